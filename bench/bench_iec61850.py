"""IEC 61850 bench: N emulated IEDs × M reported values → gateway → Mosquitto → subscriber.

Three processes besides Mosquitto, as in production: the IED host (all IEDs, one asyncio
loop), the gateway, and the subscriber (this process). Measures reported values/s out to
MQTT, change-to-subscriber latency (IED timestamp → MQTT receive, ms resolution of the
payload), and the gateway's CPU and RSS, in two phases: ``trickle`` (one value per IED
every 50 ms: the latency of a single change) and ``burst`` (every value of every IED
changes at once, ``--rate`` times a second: throughput; latency then includes queueing
behind the burst).

    python bench/bench_iec61850.py --ieds 10 --points 200 --rate 2 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.support import percentile, proc_stats, stop  # noqa: E402


def site(ieds: int, points: int, receive_tick_ms: float | None = None, rcbs: tuple[int, int] | None = None) -> dict:
    from tests.iec61850.support import bay_points
    from tests.support.mosquitto import free_port

    devices, bays = [], []
    for i in range(ieds):
        name = f"B{i + 1}"
        pts = bay_points(f"{name}PROT", eq=f"S1/{name}/CB1", extra=points - 7)
        equipment = [{"name": "CB1", "type": "Breaker"}]
        for j, p in enumerate(pts[7:]):  # one busbar-section per spare analogue: each its own CIM topic
            equipment.append({"name": f"X{j}", "type": "BusbarSection"})
            p["measurement"]["equipment"] = f"S1/{name}/X{j}"
        bays.append({"name": name, "equipment": equipment})
        devices.append({
            "name": name, "kind": "ied", "protocol": "iec61850", "host": "127.0.0.1", "port": free_port(),
            "poll_interval": "1s", "timeout": "2s", "points": pts,
            "iec61850": ({} if receive_tick_ms is None else {"receive_tick_ms": receive_tick_ms})
            | ({} if rcbs is None else {"brcb_instances": rcbs[0], "urcb_instances": rcbs[1]}),
        })
    return {
        "site": {"name": "BENCH"},
        "gateway": {"id": "gw-bench", "northbound": {"integrity_interval": "1h", "queue_size": 200000}},
        "substations": [{"name": "S1", "bays": bays}],
        "devices": devices,
    }


# ---------------------------------------------------------------- child: IED host


async def ied_host(cfg_path: str) -> None:
    from devices.iec61850.server import Iec61850Ied
    from gateway.config import Config

    cfg = Config.model_validate(json.load(open(cfg_path)))
    ieds = [Iec61850Ied(d) for d in cfg.devices]
    for ied in ieds:
        ied.start()
    names = [[p.name for p in d.points if p.name != "Pos" and p.name != "E"] for d in cfg.devices]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    k = 0
    while line := await reader.readline():
        mode, rate, seconds, jitter = line.decode().split()
        period = 1.0 / float(rate)
        t_next = loop.time()
        end = t_next + float(seconds)
        values = 0
        while loop.time() < end:
            for ied, pts in zip(ieds, names):
                now = time.time()
                if mode == "burst":  # one round: every value of every IED changes
                    ied.update_many([(p, k + j * 0.5, 0, now) for j, p in enumerate(pts)])
                    values += len(pts)
                else:  # trickle: one value per IED per tick, the latency probe
                    ied.update(pts[k % len(pts)], float(k), 0, now)
                    values += 1
            k += 1
            t_next += period
            # a random offset per round: changes in a real bay do not keep step with the client's naps
            await asyncio.sleep(max(0.0, t_next + random.uniform(0.0, float(jitter)) - loop.time()))
        print(json.dumps({"values": values}), flush=True)
    for ied in ieds:
        ied.stop()


# ---------------------------------------------------------------- child: gateway


async def gateway(cfg_path: str, broker: str) -> None:
    from gateway.app import Gateway, GatewayOptions
    from gateway.config import Config

    cfg = Config.model_validate(json.load(open(cfg_path)))
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    async with Gateway(cfg, GatewayOptions(broker=broker, status_interval=5.0)) as gw:
        while not done.is_set():
            await asyncio.sleep(1)
            connected = sum(s.connected for s in gw.sources)
            print(json.dumps({"connected": connected, "stats": gw.stats(),
                              "mms": {s.device: [s.stats.reports, s.stats.values, s.stats.dropped] for s in gw.sources}}),
                  flush=True)


# ---------------------------------------------------------------- parent


async def run(args: argparse.Namespace) -> dict:
    cfg = site(args.ieds, args.points, args.receive_tick_ms, args.rcbs)
    with tempfile.TemporaryDirectory(prefix="gg-bench-61850-") as d:
        path = os.path.join(d, "site.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return await _run(args, path)


async def _run(args: argparse.Namespace, path: str) -> dict:
    import gmqtt

    from tests.support.mosquitto import Mosquitto

    env = dict(os.environ, PYTHONPATH=ROOT)
    me = os.path.abspath(__file__)
    received: list[tuple[float, str]] = []

    def on_message(client, topic, payload, qos, props):
        received.append((time.time(), payload))
        return 0

    with Mosquitto(extra="set_tcp_nodelay true\n" if args.nodelay else "") as mq:
        host = subprocess.Popen([sys.executable, me, "--child", "ieds", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        gw = sub = None
        try:
            if host.stdout.readline().strip() != "ready":
                raise SystemExit(f"the IED host process exited with code {host.wait()} before it was ready")
            gw = subprocess.Popen([sys.executable, me, "--child", "gateway", path, mq.url], stdout=subprocess.PIPE, text=True, env=env)
            sub = gmqtt.Client("bench-sub")
            sub.on_message = on_message
            await sub.connect("127.0.0.1", mq.port)
            sub.subscribe("gridgate/v1/gw-bench/meas/#", qos=0)
            deadline = time.monotonic() + 60
            while True:  # all IEDs associated, GI done
                line = await asyncio.to_thread(gw.stdout.readline)
                if not line:
                    raise SystemExit(f"the gateway process exited with code {gw.wait()} before its IEDs were connected")
                st = json.loads(line)
                if st["connected"] == args.ieds:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {st['connected']} of {args.ieds} IEDs connected")
            await asyncio.sleep(2)
            results = {}
            for phase, mode, rate in (("trickle", "trickle", 20.0), ("burst", "burst", args.rate)):
                received.clear()
                cpu0, _ = proc_stats(gw.pid)
                t0 = time.time()
                host.stdin.write(f"{mode} {rate} {args.seconds} {args.jitter_ms / 1000}\n")
                host.stdin.flush()
                sent = json.loads(await asyncio.to_thread(host.stdout.readline))
                await asyncio.sleep(1.0)  # drain
                elapsed = time.time() - t0
                cpu1, rss = proc_stats(gw.pid)
                lat = []
                for at, payload in received:
                    ts = json.loads(payload)["timeStamp"]
                    src = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=__import__("datetime").timezone.utc).timestamp()
                    if src >= t0 - 1:
                        lat.append((at - src) * 1000)
                results[phase] = {
                    "mode": mode,
                    "rounds_per_s": rate,
                    "values_changed": sent["values"],
                    "values_received": len(lat),
                    "values_per_s": round(len(lat) / args.seconds, 1),
                    "latency_ms_p50": round(percentile(lat, 0.5), 1),
                    "latency_ms_p99": round(percentile(lat, 0.99), 1),
                    "latency_ms_max": round(max(lat), 1) if lat else None,
                    "gateway_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
                    "gateway_rss_mb": round(rss / 2**20, 1),
                }
            results["load_avg_1m"] = os.getloadavg()[0]
            return results
        finally:
            if sub is not None:
                await sub.disconnect()
            stop(gw)  # first: the IEDs going away would be a comms loss to a running gateway
            host.stdin.close()  # the IED host stops at the end of its input
            stop(host)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ieds", type=int, default=10)
    ap.add_argument("--points", type=int, default=200, help="reported values per IED (7 bay points + GGIO AnIn)")
    ap.add_argument("--rate", type=float, default=2.0, help="rounds per second in the burst phase (every value changes each round)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--no-nodelay", dest="nodelay", action="store_false",
                    help="leave Nagle on in Mosquitto (adds ~40 ms: Nagle x delayed ACK on loopback)")
    ap.add_argument("--receive-tick-ms", type=float, default=None,
                    help="gateway MMS client nap when idle (iec61850.receive_tick_ms; 0: libiec61850's 10 ms thread)")
    ap.add_argument("--jitter-ms", type=float, default=0.0,
                    help="delay each round by a random 0..J ms (a fixed period can keep step with the MMS client's 10 ms "
                         "naps and hide them; 10 shows them)")
    ap.add_argument("--rcbs", type=int, nargs=2, metavar=("BRCB", "URCB"), default=None,
                    help="RCB instances per data set on each IED (default 2 2); each costs the IED ~3.5 µs per changed value")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        asyncio.run(ied_host(*rest) if kind == "ieds" else gateway(*rest))
        return
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
