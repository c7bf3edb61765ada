"""End-to-end gateway throughput: emulated Modbus devices → gateway → Mosquitto → subscriber.

Prints points/s polled, normalised and published, values/s at the subscriber, gateway CPU
and RSS, for a site of N points (default 10,000) whose values change on every poll
(deadband 0), so every poll is a publication.

    python bench/bench_gateway.py [--points 10000] [--devices 20] [--poll 0.5] [--seconds 20]
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

from tests.support.mosquitto import Mosquitto, free_port  # noqa: E402
from tests.support.mqtt import Collector  # noqa: E402

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


def proc_stats(pid: int) -> tuple[float, int]:
    """(cpu seconds, rss bytes) of a process"""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))
    return cpu, rss


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gg-bench-"))
    cfg = tmp / "site.yaml"
    cfg.write_text(yaml.safe_dump(site(args.points, args.devices, args.poll), sort_keys=False))
    cli = [sys.executable, "-m", "gateway.cli"]
    with Mosquitto() as broker:
        emu = subprocess.Popen([*cli, "emulate", "--config", str(cfg)], cwd=ROOT, stdout=subprocess.DEVNULL)
        time.sleep(2)
        gw = subprocess.Popen([*cli, "gateway", "--config", str(cfg), "--broker", broker.url], cwd=ROOT,
                              stdout=subprocess.DEVNULL)
        try:
            async with Collector(broker.port, ["gridgate/v1/bench/meas/#", "gridgate/v1/bench/status"]) as sub:
                print(f"site: {args.points} points on {args.devices} Modbus devices, poll {args.poll} s; "
                      f"waiting for the first values, then warming up {args.warmup} s", file=sys.stderr)
                await sub.wait_for(lambda: len(sub.on("/meas/")) > 0, 120, "first values")
                await asyncio.sleep(args.warmup)
                n0 = len(sub.on("/meas/"))
                cpu0, _ = proc_stats(gw.pid)
                ecpu0, _ = proc_stats(emu.pid)
                bcpu0, _ = proc_stats(broker.proc.pid)
                me0 = time.process_time()
                t0 = time.monotonic()
                rss_max = 0
                while time.monotonic() - t0 < args.seconds:
                    await asyncio.sleep(1)
                    rss_max = max(rss_max, proc_stats(gw.pid)[1])
                    print(f"  {time.monotonic() - t0:4.0f} s  received {len(sub.on('/meas/')) - n0}", file=sys.stderr, end="\r")
                dt = time.monotonic() - t0
                n1 = len(sub.on("/meas/"))
                cpu1, rss = proc_stats(gw.pid)
                ecpu1, _ = proc_stats(emu.pid)
                bcpu1, _ = proc_stats(broker.proc.pid)
                me1 = time.process_time()
                st1 = sub.latest("/status") or {}
        finally:
            for p in (gw, emu):  # never leave a process behind, even if it is slow to stop
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
    def ts(st: dict) -> float:
        from datetime import datetime
        return datetime.fromisoformat(st["timeStamp"].replace("Z", "+00:00")).timestamp()

    statuses = [m.json for m in sub.on("/status") if m.json.get("state") == "online" and m.json.get("stats")]
    window = [st for st in statuses if st is not None]
    gw_rate = None
    if len(window) >= 2:
        a, b = window[-2] if len(window) == 2 else window[1], window[-1]
        gw_rate = round((b["stats"]["published"] - a["stats"]["published"]) / (ts(b) - ts(a)))
        gw_read = round((b["stats"]["readings"] - a["stats"]["readings"]) / (ts(b) - ts(a)))
    s1 = st1.get("stats", {})
    result = {
        "points": args.points,
        "devices": args.devices,
        "poll_s": args.poll,
        "offered_points_per_s": round(args.points / args.poll),
        "gateway_readings_per_s": gw_read if gw_rate is not None else None,
        "gateway_published_per_s": gw_rate,
        "subscriber_values_per_s": round((n1 - n0) / dt),
        "cpu_percent": {"gateway": round(100 * (cpu1 - cpu0) / dt, 1), "emulator": round(100 * (ecpu1 - ecpu0) / dt, 1),
                        "mosquitto": round(100 * (bcpu1 - bcpu0) / dt, 1), "subscriber": round(100 * (me1 - me0) / dt, 1)},
        "gateway_rss_mib": round(rss / 2**20, 1),
        "gateway_rss_max_mib": round(rss_max / 2**20, 1),
        "dropped": s1.get("dropped"),
    }
    print()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
