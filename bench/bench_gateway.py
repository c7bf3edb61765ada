"""End-to-end gateway throughput: emulated Modbus devices → gateway → Mosquitto → subscriber.

Prints points/s polled, normalised and published, values/s at the subscriber, values per
CPU-second of the gateway, time from the gateway's start to the first value, gateway CPU
and RSS, for sites of N points (default 10,000) whose values change on every poll
(deadband 0), so every poll is a publication. The load average is printed with each run:
the figures are only comparable at similar load.

    python bench/bench_gateway.py [--points 1000 10000 50000] [--devices 20] [--poll 0.5] [--seconds 20]
                                  [--peer thingsboard] [--py-spy flame.svg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import proc_stats, stop, wait_ports  # noqa: E402
from tests.support.mosquitto import Mosquitto, free_port  # noqa: E402

TYPES = [("LineCurrent", p) for p in ("A", "B", "C", "N")] + [("PhaseVoltage", p) for p in ("AN", "BN", "CN")] + [
    ("ThreePhaseActivePower", "ABC"), ("ThreePhaseReactivePower", "ABC"), ("Frequency", "none")
]


def site(points: int, devices: int, poll: float) -> dict:
    per_dev = points // devices
    n_equipment = (points + len(TYPES) - 1) // len(TYPES)
    bays = []
    for b in range(0, n_equipment, 50):
        bays.append({"name": f"B{b // 50}", "equipment": [{"name": f"LV{e}", "type": "EnergyConsumer"} for e in range(b, min(b + 50, n_equipment))]})
    devs = []
    k = 0
    for d in range(devices):
        pts = []
        for i in range(per_dev):
            eq = k // len(TYPES)
            mtype, phases = TYPES[k % len(TYPES)]
            pts.append({
                "name": f"p{i}", "table": "holding", "address": i, "type": "uint16", "scale": 0.1,
                "measurement": {"equipment": f"SUB/B{eq // 50}/LV{eq}", "type": mtype, "phases": phases},
                "signal": {"kind": "ramp", "start": (i % 100) * 10.0, "rate": 7.0, "min": 0, "max": 6000, "wrap": True},
            })
            k += 1
        devs.append({"name": f"m{d}", "kind": "meter", "protocol": "modbus", "port": free_port(),
                     "poll_interval": poll, "timeout": 2.0, "points": pts})
    return {"site": {"name": "BENCH"}, "gateway": {"id": "bench", "northbound": {"queue_size": 200000}},
            "substations": [{"name": "SUB", "bays": bays}], "devices": devs}


async def watch(pid: int, sub: "Counter", n0: int, seconds: float) -> tuple[float, int]:
    """The measuring window: (elapsed s, peak RSS of ``pid``), sampled once a second with progress on stderr."""
    t0 = time.monotonic()
    rss_max = 0
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(1)
        rss_max = max(rss_max, proc_stats(pid)[1])
        print(f"  {time.monotonic() - t0:4.0f} s  received {sub.values - n0}", file=sys.stderr, end="\r")
    return time.monotonic() - t0, rss_max


class Counter:
    """A subscriber that only counts (storing 100k values/s would make the bench the bottleneck)."""

    def __init__(self, port: int, gateway: str) -> None:
        import gmqtt

        self.port, self.values, self.first_at, self.status = port, 0, 0.0, []
        self.client = gmqtt.Client(f"bench-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: [c.subscribe(f"gridgate/v1/{gateway}/{t}", qos=0) for t in ("meas/#", "status")]

    def _on_message(self, client, topic, payload, qos, properties) -> int:
        if "/meas/" in topic:
            if not self.values:
                self.first_at = time.monotonic()
            self.values += 1
        else:
            self.status.append(json.loads(payload))
        return 0

    async def __aenter__(self) -> "Counter":
        await self.client.connect("127.0.0.1", self.port)
        await asyncio.sleep(0.2)  # subscriptions acknowledged
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()


def py_spy_exe() -> Path:
    """py-spy from this venv or PATH; exits with how to install it (checked before anything starts)."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        exe = Path(shutil.which("py-spy") or "")
    if not exe.name:
        raise SystemExit("--py-spy: py-spy is not installed (pip install py-spy into the bench's venv)")
    return exe


def py_spy(pid: int, out: str, seconds: float) -> subprocess.Popen:
    """Sample the gateway for the measured window into a flame graph."""
    # the window is measured with the sampler running: its cost is in the emulator/bench, not in the gateway process
    return subprocess.Popen([str(py_spy_exe()), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
                             "200", "--nonblocking", "--output", out,
                             "--format", "flamegraph" if out.endswith(".svg") else "raw"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: the gateway's status interval (GatewayOptions.status_interval): its own readings/published counters come that often
STATUS_EVERY_S = 10.0


async def run_one(points: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="gg-bench-") as d:
        return await _run_one(points, args, Path(d))


async def _run_one(points: int, args: argparse.Namespace, tmp: Path) -> dict:
    cfg = tmp / "site.yaml"
    data = site(points, args.devices, args.poll)
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    cli = [sys.executable, "-m", "gateway.cli"]
    env = dict(os.environ, GRIDGATE_CACHE_DIR=str(tmp / "cache"))  # a cold start first, then a warm restart
    with Mosquitto() as broker:
        # no fault API: nothing injects faults here, and it would share a name registry with other emulators; a cache
        # of its own: the gateway's first start must not find the site file parsed by the emulator
        emu = subprocess.Popen([*cli, "emulate", "--config", str(cfg), "--no-fault-api"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, env=dict(env, GRIDGATE_CACHE_DIR=str(tmp / "emulator-cache")))
        gw = None
        try:
            emu_start = wait_ports([d["port"] for d in data["devices"]], 600, emu)
            async with Counter(broker.port, "bench") as sub:
                print(f"site: {points} points on {args.devices} Modbus devices, poll {args.poll} s (emulator up in "
                      f"{emu_start:.1f} s); waiting for the first values, then warming up {args.warmup} s", file=sys.stderr)
                t_gw = time.monotonic()
                gw = subprocess.Popen([*cli, "gateway", "--config", str(cfg), "--broker", broker.url], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, env=env)
                deadline = t_gw + 300
                while not sub.values and time.monotonic() < deadline:
                    if gw.poll() is not None:
                        raise SystemExit(f"the gateway exited with code {gw.returncode} before its first value")
                    await asyncio.sleep(0.02)
                if not sub.values:
                    raise SystemExit("no value within 300 s of the gateway's start")
                first_value_s = sub.first_at - t_gw
                rss_first = proc_stats(gw.pid)[1]
                st_first = len(sub.status)
                await asyncio.sleep(args.warmup)
                n0 = sub.values
                cpu0, _ = proc_stats(gw.pid)
                ecpu0, _ = proc_stats(emu.pid)
                bcpu0, _ = proc_stats(broker.proc.pid)
                me0 = time.process_time()
                spy = py_spy(gw.pid, args.py_spy, args.seconds) if args.py_spy else None
                st0 = len(sub.status)
                dt, rss_max = await watch(gw.pid, sub, n0, args.seconds)
                n1 = sub.values
                cpu1, rss = proc_stats(gw.pid)
                ecpu1, _ = proc_stats(emu.pid)
                bcpu1, _ = proc_stats(broker.proc.pid)
                me1 = time.process_time()
                print(file=sys.stderr)
                if spy is not None:
                    spy.wait(60)
                    print(f"flame graph of the gateway: {args.py_spy}", file=sys.stderr)
                # the gateway's own rates come from two of its status reports: the last one before the window (after
                # the first value) and the last in it, or the next after it when the window is shorter than their interval
                def online() -> list[dict]:
                    return [st for st in sub.status[max(st_first, st0 - 1):] if st.get("state") == "online" and st.get("stats")]

                until = time.monotonic() + STATUS_EVERY_S + 2
                while len(online()) < 2 and time.monotonic() < until:
                    await asyncio.sleep(0.1)
                statuses = online()
                # restart: the parsed config is cached now, as on any restart after the first
                stop(gw, grace=30)
                await asyncio.sleep(1)  # values still in flight from the stopped gateway
                sub.values, sub.first_at = 0, 0.0
                t_gw = time.monotonic()
                gw = subprocess.Popen([*cli, "gateway", "--config", str(cfg), "--broker", broker.url], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, env=env)
                while not sub.values and time.monotonic() < t_gw + 300 and gw.poll() is None:
                    await asyncio.sleep(0.02)
                restart_first_value_s = sub.first_at - t_gw if sub.values else None
                stop(gw, grace=30)
                gw = None
            peer = None
            if args.peer == "thingsboard":  # the same devices and broker, one gateway at a time
                from bench import thingsboard_peer

                await asyncio.sleep(1)
                peer = await thingsboard_peer.measure(data, broker.port, emu.pid, broker.proc.pid, args, tmp, proc_stats)
        finally:
            stop(gw, emu)  # never leave a process behind, even if it is slow to stop

    def ts(st: dict) -> float:
        from datetime import datetime
        return datetime.fromisoformat(st["timeStamp"].replace("Z", "+00:00")).timestamp()

    gw_rate = gw_read = None
    if len(statuses) >= 2:
        a, b = statuses[0], statuses[-1]
        gw_rate = round((b["stats"]["published"] - a["stats"]["published"]) / (ts(b) - ts(a)))
        gw_read = round((b["stats"]["readings"] - a["stats"]["readings"]) / (ts(b) - ts(a)))
    s1 = statuses[-1].get("stats", {}) if statuses else {}
    gw_cpu_s = cpu1 - cpu0
    received = n1 - n0
    result = {
        "points": points,
        "devices": args.devices,
        "poll_s": args.poll,
        "offered_points_per_s": round(points / args.poll),
        "gateway_readings_per_s": gw_read,
        "gateway_published_per_s": gw_rate,
        "subscriber_values_per_s": round(received / dt),
        # the figure of issue 18: values delivered to the subscriber per CPU-second of the gateway process
        "points_per_gateway_cpu_s": round(received / gw_cpu_s) if gw_cpu_s > 0 else None,
        "time_to_first_value_s": round(first_value_s, 2),  # first start: the config is parsed
        "time_to_first_value_restart_s": round(restart_first_value_s, 2) if restart_first_value_s else None,
        "cpu_percent": {"gateway": round(100 * gw_cpu_s / dt, 1), "emulator": round(100 * (ecpu1 - ecpu0) / dt, 1),
                        "mosquitto": round(100 * (bcpu1 - bcpu0) / dt, 1), "subscriber": round(100 * (me1 - me0) / dt, 1)},
        "gateway_rss_first_value_mib": round(rss_first / 2**20, 1),
        "gateway_rss_mib": round(rss / 2**20, 1),
        "gateway_rss_max_mib": round(rss_max / 2**20, 1),
        "dropped": s1.get("dropped"),
        "load_average_1m": os.getloadavg()[0],
    }
    if peer is not None:
        result["thingsboard"] = peer
        result["ratio_vs_thingsboard"] = ratios(result, peer)
    return result


def ratios(ours: dict, peer: dict) -> dict:
    """gridgate ÷ ThingsBoard IoT Gateway for each figure (points per CPU-s: higher is better; RSS and
    time to first value: lower is better)."""
    def div(a, b):  # noqa: ANN001, ANN202
        return round(a / b, 2) if a and b else None

    return {"points_per_gateway_cpu_s": div(ours["points_per_gateway_cpu_s"], peer["points_per_gateway_cpu_s"]),
            "gateway_rss_mib": div(ours["gateway_rss_mib"], peer["gateway_rss_mib"]),
            "time_to_first_value_s": div(ours["time_to_first_value_s"], peer["time_to_first_value_s"])}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, nargs="+", default=[10000], help="one run per size, e.g. 1000 10000 50000")
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--peer", choices=["thingsboard"], default=None,
                    help="also measure ThingsBoard IoT Gateway's Modbus connector on the same devices and broker "
                         "(installed by bench/setup_thingsboard.sh) and print the ratios")
    ap.add_argument("--tb-venv", default=os.environ.get("TB_GATEWAY_VENV", "/work/.tbvenv"),
                    help="venv of ThingsBoard IoT Gateway (default: $TB_GATEWAY_VENV or %(default)s)")
    ap.add_argument("--py-spy", metavar="FILE", default=None,
                    help="sample the gateway with py-spy during the measured window: a flame graph (.svg) or collapsed stacks "
                         "(any other name)")
    args = ap.parse_args()
    if args.py_spy:  # a missing peer or sampler is named before the first run, not after it
        py_spy_exe()
    if args.peer == "thingsboard":
        from bench import thingsboard_peer

        thingsboard_peer.tb_python(args.tb_venv)
    for n in args.points:
        result = await run_one(n, args)
        print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
