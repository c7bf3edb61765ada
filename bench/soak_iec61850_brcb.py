"""Soak: the example site's six IEDs for ten minutes with the gateway away; does each BRCB keep every change?

The real-time run of tests/iec61850/test_brcb_soak.py (which runs the same ten site minutes at ten
times wall speed): the gateway's MMS driver associates with every IED (GI), leaves, the site runs
``--minutes`` with nothing transmitted, then the gateway resumes each buffered RCB after its last
EntryID. Prints per IED: changes and reported entries per second, the backlog booked in
libiec61850's report buffer when the gateway came back (max buffer use: nothing is transmitted while
it is away, so the buffer only grows), reports flagged BufOvfl, changes lost, and the minutes the
buffer would last at that rate.

    python bench/soak_iec61850_brcb.py                 # the real 10 minutes
    python bench/soak_iec61850_brcb.py --accel 10      # the test's equivalent 1-minute run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.support import load_average  # noqa: E402


async def main() -> None:
    from tests.iec61850.brcb_soak import run

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="site minutes with the gateway away")
    ap.add_argument("--accel", type=float, default=1.0, help="site seconds per wall second (1: real time)")
    args = ap.parse_args()
    res = await run(args.minutes * 60, args.accel, progress=lambda m: print(m, file=sys.stderr))
    s = res.site_seconds
    out = {
        "site_seconds": s, "wall_seconds": round(res.wall_seconds, 1), "firmware_ticks": res.ticks,
        "report_buffer_bytes": res.buffer_bytes,
        "ieds": {
            i.name: {
                "changes_per_s": round(i.changes / s, 2),
                "reported_entries_per_s": round(i.backlog_entries / s, 2),
                "max_buffer_use_bytes": i.backlog_bytes,
                "max_buffer_use_pct": round(100 * i.backlog_bytes / res.buffer_bytes, 1),
                "buffer_lasts_minutes": round(res.buffer_bytes / i.backlog_bytes * s / 60, 1) if i.backlog_bytes else None,
                "overflow_flags_on_resume": i.overflows,
                "resume_gaps": i.resume_gaps,
                "changes_lost": sum(v for v in i.missing.values() if v > 0),
            }
            for i in res.ieds
        },
        "max_buffer_use_bytes": res.max_backlog_bytes,
        "overflows_total": sum(i.overflows for i in res.ieds),
        "load_average": load_average(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
