"""IEC 61850 report rate of the example site's six IEDs, without and with the IED deadbands.

The emulator (firmware + six IEDs) runs in this process for ``--seconds`` per phase; one MMS client
(the gateway's driver) per IED counts the reported values. Phase ``db=0`` serves every sample as a
data change (the model before deadbands); phase ``configured`` uses the site's deadbands. From the
rate follows how long a buffered RCB (1 MB, about 6 000 entries in libiec61850) lasts while the
gateway is away (bench/soak_iec61850_brcb.py measures it directly).

    python bench/bench_iec61850_deadband.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.support import load_average  # noqa: E402

# REPORT_BUFFER_BYTES (1 MB) / ~160 bytes per entry, as bench/soak_iec61850_brcb.py measures for this site's
# reports (about one changed value per entry); the soak run is the direct measurement
BRCB_ENTRIES = 6_250


async def phase(db_zero: bool, seconds: float) -> dict:
    from devices.emulator import Emulator
    from gateway.config import Config, load_config
    from gateway.pipeline import Backoff
    from gateway.southbound.iec61850 import MmsSource
    from tests.support.mosquitto import free_port

    base = load_config(os.path.join(ROOT, "configs", "primary-substation.yaml")).model_dump()
    for d in base["devices"]:
        d["port"] = free_port()
        if d["protocol"] == "iec61850" and db_zero:
            for p in d["points"]:
                p["db"] = 0
    cfg = Config.model_validate(base)
    ieds = [d for d in cfg.devices if d.protocol == "iec61850"]
    counts = {d.name: 0 for d in ieds}
    async with Emulator(cfg, tick=0.1, only={d.name for d in ieds}):
        srcs = [MmsSource(d, Backoff(initial=0.2, maximum=0.5)) for d in ieds]
        events: dict[str, int] = counts

        def sink_for(name: str):
            def sink(r) -> None:
                if r.event:
                    events[name] += 1
            return sink

        tasks = [asyncio.create_task(s.run(sink_for(d.name))) for s, d in zip(srcs, ieds)]
        deadline = time.monotonic() + 20
        while not all(s.connected for s in srcs) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        for k in counts:
            counts[k] = 0
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        total = sum(counts.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    per_ied = total / elapsed / len(ieds)
    return {
        "deadbands": "db=0" if db_zero else "configured",
        "reported_values_per_s_all_ieds": round(total / elapsed, 1),
        "reported_values_per_s_per_ied": round(per_ied, 2),
        "brcb_minutes_until_overflow_with_gateway_away": round(BRCB_ENTRIES / per_ied / 60, 1) if per_ied else None,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="each phase")
    args = ap.parse_args()
    out = {"phases": [await phase(True, args.seconds), await phase(False, args.seconds)], "load_average": load_average()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
