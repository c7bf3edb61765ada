"""Userspace link emulator: delay, jitter, loss, rate and faults per direction.

The kernel here has no netem, so a router zone routes the link's traffic into a TUN
device; this process reads each IP packet, decides its fate with :class:`Shaper` and
writes it back after the delay, and the kernel forwards it on. It also serves a small
JSON-lines control socket (partition/heal/stats) so tests and the CLI can cut the link.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import ipaddress
import json
import os
import random
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from devices.netlab.faults import link_down
from devices.netlab.profile import Emulation, Fault

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
TABLE = "100"


@dataclass
class DirStats:
    packets: int = 0
    bytes: int = 0
    delivered: int = 0
    lost: int = 0  # random loss
    queue_drops: int = 0  # drop-tail overflow
    fault_drops: int = 0  # link down (partition/flap/maintenance)


class Shaper:
    """One direction of the link. ``admit`` returns the delivery time or None (dropped).

    Packets leave in order: serialisation at ``rate`` then delay ± uniform jitter, never
    earlier than the previous packet (like a real single path, no reordering).
    """

    def __init__(self, delay_ms: float, jitter_ms: float, loss_pct: float, rate_kbit: float | None,
                 queue_packets: int = 1000, rng: random.Random | None = None) -> None:
        self.delay = delay_ms / 1000
        self.jitter = jitter_ms / 1000
        self.loss = loss_pct / 100
        self.rate = rate_kbit * 1000 if rate_kbit else None
        self.queue = queue_packets
        self.rng = rng or random.Random()
        self.stats = DirStats()
        self._tx_free = 0.0  # when the serialiser is next idle
        self._last_out = 0.0
        self._in_flight: list[float] = []

    def admit(self, now: float, size: int, down: bool = False) -> float | None:
        st = self.stats
        st.packets += 1
        st.bytes += size
        if down:
            st.fault_drops += 1
            return None
        if self.loss and self.rng.random() < self.loss:
            st.lost += 1
            return None
        self._in_flight = [t for t in self._in_flight if t > now]
        if len(self._in_flight) >= self.queue:
            st.queue_drops += 1
            return None
        start = max(now, self._tx_free)
        done = start + (size * 8 / self.rate if self.rate else 0.0)
        self._tx_free = done
        out = done + max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter))
        out = max(out, self._last_out)
        self._last_out = out
        self._in_flight.append(out)
        st.delivered += 1
        return out


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _sh(*argv: str) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")


def _sysctl(key: str, value: str) -> None:
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)


def steer_through_tun(tun: str, dev_a: str, dev_b: str, subnets: list[str]) -> None:
    """Policy routing in the router zone: traffic arriving on either lab veth goes into the
    TUN; what the emulator writes back (iif tun) is forwarded by the main table. Only the
    two lab subnets are routed — no default route, nothing can leave the lab."""
    _sh("ip", "link", "set", tun, "up")
    for s in subnets:
        _sh("ip", "route", "add", s, "dev", tun, "table", TABLE)
    _sh("ip", "rule", "add", "iif", dev_a, "lookup", TABLE, "pref", "100")
    _sh("ip", "rule", "add", "iif", dev_b, "lookup", TABLE, "pref", "101")
    for k in ("all", "default", tun, dev_a, dev_b):
        _sysctl(f"net.ipv4.conf.{k}.rp_filter", "0")
    _sysctl("net.ipv4.ip_forward", "1")


class LinkEmulator:
    def __init__(self, emulate: Emulation, faults: list[Fault], b_subnet: str, seed: int | None = None) -> None:
        rng = random.Random(seed)
        self.up = Shaper(emulate.delay_ms, emulate.jitter_ms, emulate.loss_pct, emulate.rate_up_kbit, emulate.queue_packets, rng)
        self.down = Shaper(emulate.delay_ms, emulate.jitter_ms, emulate.loss_pct, emulate.rate_down_kbit, emulate.queue_packets, rng)
        self.faults = faults
        self.b_net = ipaddress.ip_network(b_subnet)
        self.forced_down = False
        self.started = time.monotonic()
        self.other = 0  # non-IPv4 packets dropped (the lab is IPv4-only)

    def is_down(self) -> bool:
        return self.forced_down or link_down(self.faults, time.monotonic() - self.started)

    def direction(self, pkt: bytes) -> Shaper | None:
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            self.other += 1
            return None
        return self.up if ipaddress.ip_address(pkt[16:20]) in self.b_net else self.down

    def stats(self) -> dict:
        imp = {"delay_ms": self.up.delay * 1000, "jitter_ms": self.up.jitter * 1000, "loss_pct": self.up.loss * 100,
               "rate_up_kbit": self.up.rate / 1000 if self.up.rate else None,
               "rate_down_kbit": self.down.rate / 1000 if self.down.rate else None}
        return {"impairment": imp, "up": asdict(self.up.stats), "down": asdict(self.down.stats), "non_ipv4_dropped": self.other,
                "link_down": self.is_down()}

    def control(self, req: dict) -> dict:
        op = req.get("op")
        if op == "partition":
            self.forced_down = True
        elif op == "heal":
            self.forced_down = False
        elif op == "set":  # runtime impairment change (scenario latency/loss faults), both directions
            for sh in (self.up, self.down):
                if req.get("delay_ms") is not None:
                    sh.delay = float(req["delay_ms"]) / 1000
                if req.get("jitter_ms") is not None:
                    sh.jitter = min(float(req["jitter_ms"]) / 1000, sh.delay)
                if req.get("loss_pct") is not None:
                    sh.loss = float(req["loss_pct"]) / 100
            for sh, key in ((self.up, "rate_up_kbit"), (self.down, "rate_down_kbit")):
                if key in req:
                    sh.rate = float(req[key]) * 1000 if req[key] else None
        elif op != "stats":
            return {"error": f"unknown op {op!r}; use partition, heal, set or stats"}
        return self.stats()

    async def serve(self, fd: int, sock_path: str) -> None:
        loop = asyncio.get_running_loop()

        # asyncio timers fire late (epoll's 1 ms rounding, scheduling); learn by how much and
        # schedule that much earlier, so the configured delay is what packets see
        early = 0.0

        def send(pkt: bytes, due: float) -> None:
            nonlocal early
            late = loop.time() - due
            early = min(0.005, max(0.0, early + 0.1 * late))
            try:
                os.write(fd, pkt)
            except OSError:
                pass  # tun gone at teardown

        def on_read() -> None:
            while True:
                try:
                    pkt = os.read(fd, 65535)
                except BlockingIOError:
                    return
                shaper = self.direction(pkt)
                if shaper is None:
                    continue
                now = loop.time()
                at = shaper.admit(now, len(pkt), self.is_down())
                if at is not None:
                    loop.call_at(at - early, send, pkt, at)

        loop.add_reader(fd, on_read)

        async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while line := await r.readline():
                    try:
                        resp = self.control(json.loads(line))
                    except ValueError as e:
                        resp = {"error": f"bad control request: {e}"}
                    w.write(json.dumps(resp).encode() + b"\n")
                    await w.drain()
            finally:
                w.close()

        server = await asyncio.start_unix_server(client, sock_path)
        print(json.dumps({"ready": True}), flush=True)
        async with server:
            await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="gridgate netlab userspace link emulator (runs in a router zone)")
    ap.add_argument("--spec", required=True, help="JSON: emulate, faults, dev_a, dev_b, subnet_a, subnet_b")
    ap.add_argument("--socket", required=True)
    args = ap.parse_args(argv)
    spec = json.loads(args.spec)
    emu = LinkEmulator(Emulation(**spec["emulate"]), [Fault(**f) for f in spec["faults"]], spec["subnet_b"], spec.get("seed"))
    try:
        fd = open_tun("emu0")
        steer_through_tun("emu0", spec["dev_a"], spec["dev_b"], [spec["subnet_a"], spec["subnet_b"]])
    except (OSError, RuntimeError) as e:
        print(json.dumps({"error": f"link emulator setup failed: {e}"}), flush=True)
        sys.exit(1)
    try:
        asyncio.run(emu.serve(fd, args.socket))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
