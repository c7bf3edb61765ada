"""Many gateways on one broker: K gateway processes (distinct gateway ids, each with its own
emulated devices) against one Mosquitto on this machine, K growing until the broker saturates.

Prints, per K: points/s offered and passed on by the broker (its own $SYS counters; one consumer takes
every value, unread), the share received,
per-gateway figures (points/s, CPU %), Mosquitto's CPU % and CPU µs per message in (each
message also goes out once, to the subscriber), and the load average. Everything shares this
machine's cores (gateways, emulators, broker, subscriber), so the broker saturates later on a
machine of its own: read the per-message broker cost, not the ceiling, when sizing (docs/scaling.md).

    python bench/bench_gateways_scale.py [--gateways 1 2 4 8] [--points 2000] [--devices 4] [--poll 0.5]
    python bench/bench_gateways_scale.py --example      # shards of configs/primary-substation.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import site  # noqa: E402
from bench.support import proc_stats, stop, wait_ports  # noqa: E402
from tests.support.mosquitto import Mosquitto, free_port  # noqa: E402

EXAMPLE = ROOT / "configs" / "primary-substation.yaml"


class BrokerCounters:
    """Mosquitto's own count of PUBLISH packets sent (``$SYS/broker/publish/messages/sent``, updated every
    1–2 s): with one consumer that is every value the broker took in, once (Mosquitto 2.0.11 does not
    update ``.../received`` for these). A Python subscriber decoding every value would saturate first."""

    def __init__(self, port: int) -> None:
        import gmqtt

        self.port, self.sys = port, {}
        self.client = gmqtt.Client(f"bench-sys-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe("$SYS/broker/publish/messages/+", qos=0)

    def _on_message(self, client, topic, payload, qos, properties) -> int:
        self.sys[topic.rsplit("/", 1)[1]] = (time.monotonic(), int(payload))
        return 0

    async def __aenter__(self) -> "BrokerCounters":
        await self.client.connect("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()


class Sink(asyncio.Protocol):
    """The consumer: subscribes to every gateway's values (QoS 0) and throws the bytes away unread."""

    def __init__(self, topic: str) -> None:
        self.topic, self.bytes = topic.encode(), 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        def s(b: bytes) -> bytes:
            return len(b).to_bytes(2, "big") + b

        def packet(header: int, body: bytes) -> bytes:
            assert len(body) < 128
            return bytes([header, len(body)]) + body

        assert isinstance(transport, asyncio.Transport)
        transport.write(packet(0x10, s(b"MQTT") + bytes([4, 2]) + (60).to_bytes(2, "big") + s(b"bench-sink"))
                        + packet(0x82, (1).to_bytes(2, "big") + s(self.topic) + b"\x00"))

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)


def shard_site(k: int, args: argparse.Namespace, url: str) -> dict:
    """Site k: the example site or a synthetic one, with gateway id ``gw-k`` and ports of its own."""
    if args.example:
        raw = yaml.safe_load(EXAMPLE.read_text())
        for d in raw["devices"]:
            d["port"] = free_port()
    else:
        raw = site(args.points, args.devices, args.poll)
    raw["gateway"]["id"] = f"gw-{k}"
    nb = raw["gateway"].setdefault("northbound", {})
    nb.update({"url": url, "queue_size": 200_000})
    nb.pop("spool", None)
    return raw


def offered(raw: dict) -> float:
    """Points polled per second by the site's devices (poll_interval in s or '500ms'/'1s')."""
    def secs(v: object) -> float:
        s = str(v)
        return float(s[:-2]) / 1000 if s.endswith("ms") else float(s.rstrip("s"))
    return sum(len(d["points"]) / secs(d.get("poll_interval", 1.0)) for d in raw["devices"] if d.get("enabled", True))


async def run_k(k: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="gg-bench-scale-") as d:
        return await _run_k(k, args, Path(d))


async def _run_k(k: int, args: argparse.Namespace, tmp: Path) -> dict:
    t_start = time.monotonic()
    cli = [sys.executable, "-m", "gateway.cli"]
    procs: list[subprocess.Popen] = []
    with Mosquitto(extra="max_queued_messages 0\nsys_interval 1\n") as broker:
        try:
            sites = []
            for i in range(k):
                raw = shard_site(i, args, broker.url)
                path = tmp / f"site{i}.yaml"
                path.write_text(yaml.safe_dump(raw, sort_keys=False))
                sites.append((path, raw))
            emus = [subprocess.Popen([*cli, "emulate", "--config", str(p), "--no-fault-api"], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p, _ in sites]
            procs += emus
            for e, (_p, raw) in zip(emus, sites):
                wait_ports([d["port"] for d in raw["devices"] if d.get("enabled", True)], 600, e)
            loop = asyncio.get_running_loop()
            sink_transport, sink = await loop.create_connection(lambda: Sink("gridgate/v1/+/meas/#"), "127.0.0.1",
                                                                broker.port)
            async with BrokerCounters(broker.port) as sub:
                gws = [subprocess.Popen([*cli, "gateway", "--config", str(p)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL) for p, _ in sites]
                procs += gws
                await asyncio.sleep(args.warmup)
                deadline = time.monotonic() + 300
                while not sub.sys.get("sent", (0, 0))[1] and time.monotonic() < deadline:
                    dead = [(i, g.returncode) for i, g in enumerate(gws) if g.poll() is not None]
                    if dead:
                        raise SystemExit(f"gateway gw-{dead[0][0]} exited with code {dead[0][1]} before its first "
                                         f"value (run `gridgate gateway --config` on a site of this bench to see why)")
                    await asyncio.sleep(0.1)
                if not sub.sys.get("sent", (0, 0))[1]:
                    raise SystemExit("the broker passed on no value within 300 s of the gateways' start")
                first = sub.sys["sent"]
                while sub.sys["sent"] == first:  # the window starts at an update
                    await asyncio.sleep(0.05)
                ta, n0 = sub.sys["sent"]
                g0 = [proc_stats(g.pid)[0] for g in gws]
                b0, e0 = proc_stats(broker.proc.pid)[0], sum(proc_stats(e.pid)[0] for e in emus)
                await asyncio.sleep(args.seconds)
                last = sub.sys["sent"]
                while sub.sys["sent"] == last:  # and ends at one
                    await asyncio.sleep(0.05)
                tb, n1 = sub.sys["sent"]
                g1 = [proc_stats(g.pid)[0] for g in gws]
                b1, e1 = proc_stats(broker.proc.pid)[0], sum(proc_stats(e.pid)[0] for e in emus)
                dt = tb - ta
                rss = [proc_stats(g.pid)[1] for g in gws]
                sink_transport.close()
        finally:
            stop(*procs, grace=20)
    got = (n1 - n0) / dt  # PUBLISH packets out to the one consumer: the values (and a few $SYS messages)
    # synthetic sites change every point at every poll; the example's devices report by exception
    offer = None if args.example else sum(offered(raw) for _p, raw in sites)
    broker_cpu = b1 - b0
    return {
        "gateways": k,
        "offered_points_per_s": round(offer) if offer else None,
        "received_points_per_s": round(got),
        "received_share": round(got / offer, 3) if offer else None,
        "per_gateway_points_per_s": round(got / k),
        "per_gateway_cpu_percent": round(100 * sum(b - a for a, b in zip(g0, g1)) / dt / k, 1),
        "per_gateway_rss_mib": round(sum(rss) / k / 2**20, 1),
        "points_per_gateway_cpu_s": round((n1 - n0) / sum(b - a for a, b in zip(g0, g1))) if sum(g1) > sum(g0) else None,
        "broker_cpu_percent": round(100 * broker_cpu / dt, 1),
        "broker_cpu_us_per_message_in": round(1e6 * broker_cpu / (n1 - n0), 2) if n1 > n0 else None,
        "emulators_cpu_percent": round(100 * (e1 - e0) / dt, 1),
        "consumer_MB_per_s": round(sink.bytes / 1e6 / (time.monotonic() - t_start), 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateways", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--points", type=int, default=2000, help="points per synthetic site")
    ap.add_argument("--devices", type=int, default=4, help="Modbus devices per synthetic site")
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--example", action="store_true", help="shards of configs/primary-substation.yaml instead")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--warmup", type=float, default=5)
    args = ap.parse_args()
    for k in args.gateways:
        r = await run_k(k, args)
        print(json.dumps(r), flush=True)
        if r["received_share"] is not None and r["received_share"] < 0.9:
            print(f"saturated at {k} gateways (received {r['received_share']:.0%} of what was offered; broker CPU "
                  f"{r['broker_cpu_percent']} %: below a core means the shared machine saturated, not the broker)",
                  flush=True)
            break


if __name__ == "__main__":
    asyncio.run(main())
