"""What the bench scripts share: stopping what they start, a process's CPU and RSS, the load average
printed beside every figure (figures are only comparable at similar load), loopback ports, a
forked helper process driven over a pipe, and the event-latency harness of the protocol benches
(one device → gateway → Mosquitto → subscriber).

A script run as ``python bench/NAME.py`` puts the repository root on ``sys.path`` itself (two lines
at its top) before importing this module as ``bench.support``."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]


def stop(*procs: subprocess.Popen | None, grace: float = 10) -> None:
    """SIGTERM every process given (None is skipped), then SIGKILL whatever still runs ``grace`` seconds
    later: a bench never leaves a process behind, even one slow to stop."""
    live = [p for p in procs if p is not None]
    for p in live:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in live:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a live process, from /proc (readable before the process exits)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS")), 0)
    return cpu, rss


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. ``"0.82 0.37 0.36"``."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(xs: list[float], q: float) -> float:
    """The ``q`` (0..1) quantile of ``xs``, nearest rank rounded up (NaN for no samples)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def still_waiting(proc: subprocess.Popen | None, t0: float, timeout: float, what: str) -> None:
    """Exit with a message if the emulator ``proc`` has ended or ``timeout`` has passed since ``t0``."""
    if proc is not None and proc.poll() is not None:
        raise SystemExit(f"emulator exited with code {proc.returncode} before its devices were up")
    if time.monotonic() - t0 > timeout:
        raise SystemExit(f"emulator: {what} after {timeout:.0f} s")


def wait_ports(ports: Iterable[int], timeout: float, proc: subprocess.Popen | None = None) -> float:
    """Seconds until every 127.0.0.1 port accepts a TCP connection (emulated devices are up); exits with
    a message if ``proc`` (the emulator) ends first or ``timeout`` passes."""
    t0 = time.monotonic()
    pending = list(ports)
    while pending:
        still_waiting(proc, t0, timeout, f"{len(pending)} device ports still closed")
        try:
            socket.create_connection(("127.0.0.1", pending[-1]), timeout=1).close()
            pending.pop()
        except OSError:
            time.sleep(0.2)
    return time.monotonic() - t0


def below_ephemeral(n: int, base: int | None = None) -> list[int]:
    """``n`` loopback ports that bind now, below the kernel's ephemeral range (from ``base`` up, if given):
    thousands of ports picked from that range (free_port) get taken by other programs' outgoing
    connections during a long start-up."""
    lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    out: list[int] = []
    for port in range(max(1024, lo - 2 * n - 2000) if base is None else base, lo):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        out.append(port)
        if len(out) == n:
            return out
    raise SystemExit(f"not {n} free ports below the ephemeral range ({lo})")


class Child:
    """A forked process running ``target(*args, conn)`` that first sends one value back (its port), then
    answers requests on the pipe until it receives ``("stop",)``: the peer side of a latency bench in a
    process of its own, so the two protocol stacks do not share a GIL."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self.parent, child = mp.Pipe()
        self.proc = mp.get_context("fork").Process(target=target, args=(*args, child), daemon=True)
        self.proc.start()
        if not self.parent.poll(30):
            self.proc.kill()
            raise RuntimeError(f"{target.__name__}: no answer within 30 s of its start")
        self.port = self.parent.recv()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, *request: Any) -> Any:
        self.parent.send(request)
        return self.parent.recv()

    def close(self) -> None:
        try:
            self.parent.send(("stop",))
        except OSError:
            pass  # it has gone already
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


@asynccontextmanager
async def gateway_on(dev: dict) -> AsyncIterator[tuple[Any, Any]]:
    """(gateway, subscriber): a gateway with the one device ``dev`` (a site with bay S1/F1 and breaker CB1,
    gateway id ``gw-b``) publishing to a private Mosquitto, and a subscriber to its values; the
    caller waits for the device's start-up sequence (each protocol has its own)."""
    from gateway.app import Gateway, GatewayOptions
    from gateway.config import Config
    from tests.support.mosquitto import Mosquitto
    from tests.support.mqtt import Collector

    cfg = Config.model_validate({
        "site": {"name": "B"}, "gateway": {"id": "gw-b"},
        "substations": [{"name": "S1", "bays": [{"name": "F1", "equipment": [{"name": "CB1", "type": "Breaker"}]}]}],
        "devices": [dev],
    })
    with Mosquitto() as mq:
        async with Collector(mq.port, ["gridgate/v1/gw-b/meas/#"]) as sub:
            async with Gateway(cfg, GatewayOptions(broker=mq.url, status_interval=5.0)) as gw:
                yield gw, sub


def mqtt_latencies_ms(sent: list[tuple[float, float]], sub: Any) -> list[float]:
    """Milliseconds from each event's send time to its value's arrival at the subscriber; ``sent`` holds
    (wall time sent, the event's source timestamp rounded to the ms), which identifies it in the payload."""
    from datetime import datetime

    got: dict[float, float] = {}
    for m in sub.messages:
        if "/meas/" in m.topic:
            ts = datetime.fromisoformat(m.json["timeStamp"].replace("Z", "+00:00")).timestamp()
            got[round(ts, 3)] = m.at
    return [(got[ts] - t) * 1000 for t, ts in sent if ts in got]
