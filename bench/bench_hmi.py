"""The browser mimic's load time and message throughput in headless Chromium (figures, no asserts).

    python bench/bench_hmi.py             # example-size (100 points) and 10,000 points
    python bench/bench_hmi.py --points 2000

A synthetic site is published retained on a private Mosquitto (catalog, one value per point,
status: what a gateway leaves on the broker), then the page is opened. Figures:

* ``ready``: navigation start → every breaker of the diagram shows its position (page, vendored
  libraries, /site.json, WebSocket connect, retained burst, topology layout, first render);
* ``burst``: a burst of one new value per point published → the page has handled them all
  (values/s the page keeps up with).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import gmqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import load_average  # noqa: E402
from gateway.hmi.server import HmiServer  # noqa: E402
from tests.hmi import bigsite  # noqa: E402
from tests.hmi.support import LoopThread, WsMosquitto, chromium, quit_chromium  # noqa: E402


async def burst(port: int, entries: list[dict], seq0: int) -> None:
    c = gmqtt.Client(f"bench-hmi-{uuid.uuid4().hex[:6]}")
    await c.connect("127.0.0.1", port, version=gmqtt.constants.MQTTv311)
    for i, e in enumerate(entries):
        v = 2 if e["measurementType"] == "SwitchPosition" else 9 if e["measurementType"] == "TapPosition" else 200.0 + i % 50
        c.publish(e["topic"], json.dumps(bigsite.value(e, seq0 + i, v)), qos=0)
        if i % 500 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.3)
    await c.disconnect()


def run(points: int, art: Path) -> dict:
    entries = bigsite.catalog(points)
    loop = LoopThread()
    with WsMosquitto() as mosq:
        loop.run(bigsite.publish_site(mosq.port, entries), timeout=300)
        hmi = loop.run(HmiServer(bigsite.site_json(mosq.ws_url), "127.0.0.1", 0).start())
        d = chromium(art)
        try:
            d.get(hmi.url)
            js = d.execute_script
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and js("return window.gridgateHmi && window.gridgateHmi.readyAt") is None:
                time.sleep(0.05)
            ready = js("return window.gridgateHmi.readyAt - 0")  # ms since navigation start
            marks = js("return Object.fromEntries(Object.entries(window.gridgateHmi.marks).map(([k, v]) => [k, Math.round(v)]))")
            loaded = js("return window.gridgateHmi.catalog.size")
            before = js("return window.gridgateHmi.received")
            t0 = time.monotonic()
            loop.run(burst(mosq.port, entries, 10 * points), timeout=300)
            while time.monotonic() < t0 + 120 and js("return window.gridgateHmi.received") < before + points:
                time.sleep(0.02)
            took = time.monotonic() - t0
            got = js("return window.gridgateHmi.received") - before
            return {"points": points, "catalog_loaded": loaded, "ready_ms": round(ready), "burst_values": got,
                    "burst_s": round(took, 2), "values_per_s": round(got / took), "marks": marks}
        finally:
            quit_chromium(d)
            loop.run(hmi.stop())
            loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, action="append", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gg-bench-hmi-") as art:  # Chromium's profile
        for n in args.points or [100, 10_000]:
            report(run(n, Path(art)))
    print(f"load average {load_average()}")


def report(r: dict) -> None:
    print(f"{r['points']:>6} points: ready {r['ready_ms']} ms after navigation ({r['catalog_loaded']} in catalog); "
          f"burst of {r['burst_values']} values handled in {r['burst_s']} s ({r['values_per_s']}/s); milestones ms {r['marks']}", flush=True)


if __name__ == "__main__":
    main()
