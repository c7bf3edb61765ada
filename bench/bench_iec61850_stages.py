"""Where the burst latency of a 200-point IED goes, stage by stage (the parts bench_iec61850.py adds up).

One IED (the bench's 200-point bay) and the gateway's MMS driver in this process, ``--bursts``
bursts of every value at once, each measured:

- ``ied_write``: the emulated IED writing the burst into its model (update_many, model lock held);
  run once per RCB layout, since libiec61850 does work per RCB instance for every changed member;
- ``report_N_read``: from the end of the write until the driver starts decoding report N (bufTm
  5 ms from the first change, the server's 1 ms loop, then the client's nap until it reads the
  socket), with the client's receive thread as libiec61850 runs it (10 ms naps) and as gridgate
  runs it (``receive_tick_ms`` 1);
- ``report_N_decode``: decoding the report into Readings (Python, on the receive thread).

Figures are p50/p90/max in ms; the machine's load is printed with them.

    python bench/bench_iec61850_stages.py --bursts 40
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


def _stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    if not xs:
        return {}
    return {"p50": round(xs[len(xs) // 2], 2), "p90": round(xs[int(len(xs) * 0.9)], 2), "max": round(xs[-1], 2)}


def _device(rcbs: tuple[int, int], tick_ms: float):
    from bench.bench_iec61850 import site
    from gateway.config import Config

    s = site(1, 200, tick_ms, rcbs)
    return Config.model_validate(s).devices[0]


def ied_write(rcbs: tuple[int, int], bursts: int) -> dict:
    from devices.iec61850.server import Iec61850Ied

    d = _device(rcbs, 1.0)
    ied = Iec61850Ied(d)
    ied.start()
    try:
        names = [p.name for p in d.points if p.name not in ("Pos", "E")]
        out = []
        for k in range(bursts):
            t = time.perf_counter()
            ied.update_many([(p, k + j * 0.5, 0, time.time()) for j, p in enumerate(names)])
            out.append((time.perf_counter() - t) * 1000)
        return _stats(out)
    finally:
        ied.stop()


async def read_and_decode(tick_ms: float, bursts: int) -> dict:
    from devices.iec61850.server import Iec61850Ied
    from gateway.pipeline import Backoff
    from gateway.southbound.iec61850 import MmsSource
    from tests.support.readings import running

    d = _device((2, 2), tick_ms)
    ied = Iec61850Ied(d)
    ied.start()
    names = [p.name for p in d.points if p.name not in ("Pos", "E")]
    src = MmsSource(d, Backoff(initial=0.2, maximum=0.5))
    seen: list[tuple[float, float]] = []
    inner = src._on_report

    def on_report(r, report) -> None:  # noqa: ANN001
        t = time.time()
        inner(r, report)
        seen.append((t, time.time()))

    src._on_report = on_report  # type: ignore[method-assign]
    rows: list[tuple[float, ...]] = []
    try:
        async with running(src) as sink:
            deadline = time.monotonic() + 30
            while not (src.connected and sink.readings):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the MMS driver had no reading from the IED within 30 s (port {d.port})")
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            for k in range(bursts):
                seen.clear()
                now = time.time()
                await asyncio.to_thread(ied.update_many, [(p, 1000 + k + j * 0.5, 0, now) for j, p in enumerate(names)])
                end = time.time()
                await asyncio.sleep(0.3)
                if len(seen) >= 2:
                    (a0, a1), (b0, b1) = seen[0], seen[1]
                    rows.append(((a0 - end) * 1000, (a1 - a0) * 1000, (b0 - end) * 1000, (b1 - b0) * 1000))
    finally:
        ied.stop()
    keys = ["report_1_read", "report_1_decode", "report_2_read", "report_2_decode"]
    return {k: _stats([r[i] for r in rows]) for i, k in enumerate(keys)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bursts", type=int, default=40)
    args = ap.parse_args()
    out: dict = {"load_avg_1m_start": round(os.getloadavg()[0], 2)}
    out["ied_write_ms"] = {f"brcb {b} urcb {u}": ied_write((b, u), args.bursts) for b, u in ((0, 0), (1, 0), (2, 2), (4, 4))}
    out["client_libiec61850_thread_ms"] = await read_and_decode(0, args.bursts)
    out["client_receive_tick_1ms_ms"] = await read_and_decode(1.0, args.bursts)
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
