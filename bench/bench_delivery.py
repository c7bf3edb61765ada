"""What "lose nothing" costs on the shipped example site: gateway CPU per value for the
delivery settings of the README table (no spool / analog QoS 0 as shipped, analog QoS 1, spool +
analog QoS 1), each as real processes (`gridgate emulate`, `gridgate gateway`) against Mosquitto.

    python bench/bench_delivery.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import load_average, stop, wait_ports  # noqa: E402
from tests.support.mosquitto import Mosquitto, free_port  # noqa: E402
from tests.support.mqtt import Collector  # noqa: E402

SITE = ROOT / "configs" / "primary-substation.yaml"
VARIANTS = {
    "shipped (no spool, analog QoS 0)": {},
    "analog QoS 1": {"analog_qos": 1},
    "spool + analog QoS 1": {"analog_qos": 1, "spool": {"path": "SPOOL"}},
}


def variant_site(tmp: Path, url: str, extra: dict) -> tuple[Path, list[int]]:
    raw = yaml.safe_load(SITE.read_text())
    for d in raw["devices"]:
        d["port"] = free_port()
    nb = raw["gateway"]["northbound"]
    nb["url"] = url
    for k, v in extra.items():
        nb[k] = {"path": str(tmp / "spool.db")} if k == "spool" else v
    out = tmp / "site.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out, [d["port"] for d in raw["devices"] if d.get("enabled", True)]


async def run(name: str, extra: dict, seconds: float) -> dict:
    with Mosquitto() as broker, tempfile.TemporaryDirectory() as tmp:
        site, ports = variant_site(Path(tmp), broker.url, extra)
        emu = subprocess.Popen([sys.executable, "-m", "gateway.cli", "emulate", "--config", str(site), "--no-fault-api"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gw = None
        try:
            async with Collector(broker.port, ["gridgate/v1/+/meas/#"]) as sub:
                await asyncio.to_thread(wait_ports, ports, 60, emu)  # devices listening
                gw = subprocess.Popen([sys.executable, "-m", "gateway.cli", "gateway", "--config", str(site)],
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await sub.wait_for(lambda: len(sub.messages) > 100, 60, "values")
                await asyncio.sleep(3.0)  # past start-up and the first integrity burst
                p = psutil.Process(gw.pid)
                cpu0, n0, t0 = sum(p.cpu_times()[:2]), len(sub.messages), time.monotonic()
                await asyncio.sleep(seconds)
                cpu1, n1, t1 = sum(p.cpu_times()[:2]), len(sub.messages), time.monotonic()
        finally:
            stop(gw, emu, grace=15)
    values = n1 - n0
    return {"variant": name, "values_s": values / (t1 - t0), "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
            "cpu_us_value": 1e6 * (cpu1 - cpu0) / max(values, 1)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15.0)
    a = ap.parse_args()
    print(f"example site, {a.seconds:g} s each, gateway process CPU (user+sys); load average {load_average()}")
    print(f"{'variant':36} {'values/s':>9} {'CPU %':>7} {'CPU µs/value':>13}")
    for name, extra in VARIANTS.items():
        r = await run(name, extra, a.seconds)
        print(f"{r['variant']:36} {r['values_s']:9.0f} {r['cpu_pct']:7.1f} {r['cpu_us_value']:13.0f}", flush=True)
    print(f"load average at the end {load_average()}")


if __name__ == "__main__":
    asyncio.run(main())
