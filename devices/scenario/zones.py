"""The two halves of a scenario run that live inside a network profile's zones.

``field``: the clocked emulator and the timeline (device and point faults applied here;
network faults are asked of the lab owner, which holds the link controls); ``record``: the
MQTT recorder in the control zone. Both talk to the lab owner (devices/scenario/profiled.py)
over their stdin/stdout pipes, never over the network: lines ``@@ {json}`` out, JSON lines in.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from dataclasses import asdict
from typing import Any

MARK = "@@ "


def say(obj: dict) -> None:
    print(MARK + json.dumps(obj), flush=True)


async def _readline() -> dict:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise EOFError("the lab owner closed the control pipe")
    return json.loads(line)


class PipeLinks:
    """The Injector's link hook: one request at a time to the lab owner, which answers ok/error."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.lock = asyncio.Lock()

    async def __call__(self, action: str, link: str, fault: Any) -> dict:
        async with self.lock:
            n = next(self.ids)
            say({"link": {"id": n, "action": action, "link": link, "fault": fault.model_dump()}})
            resp = await _readline()
        if resp.get("error"):
            raise RuntimeError(resp["error"])
        return resp


async def field(scenario: str, config: str, links: frozenset[str], out: str) -> int:
    from devices.scenario.clock import ClockedEmulator
    from devices.scenario.inject import Injector
    from devices.scenario.resolve import load_scenario
    from devices.scenario.runner import Timeline

    plan = load_scenario(scenario, config, links)
    scn = plan.scenario
    tl = Timeline(plan, lambda m: print(m, file=sys.stderr, flush=True))
    emu = ClockedEmulator(plan.cfg, seed=scn.seed, tick=scn.tick, epoch=scn.epoch, on_tick=tl.on_tick)
    tl.injector = Injector(emu, plan.site, links=PipeLinks())
    await emu.start()
    try:
        say({"ready": True, "skipped": emu.skipped})
        await _readline()  # {"go": true}: the recorder has seen every point (or the warm-up ran out)
        tl.t0 = emu.go()
        say({"t0": tl.t0, "events": len(plan.events), "duration": plan.duration})
        await asyncio.sleep(plan.duration)
    finally:
        try:
            await tl.injector.clear_all()
        finally:
            await emu.stop()
    result = {"t0": tl.t0, "injections": list(tl.injections.values()), "errors": tl.errors,
              "skipped": emu.skipped, "log": tl.injector.log}
    with open(out, "w") as f:
        json.dump(result, f)
    say({"done": True})
    return 0


async def record(broker: str, topic: str, config: str, out: str) -> int:
    from devices.scenario.recorder import Recorder
    from devices.scenario.resolve import Site
    from gateway.config import load_config

    site = Site.of(load_config(config))
    want = set(site.key_to_mrid)
    async with Recorder(broker, topic, site.mrid_to_key) as rec:
        say({"subscribed": True})
        eof = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, sys.stdin.read))
        warm = False
        while not eof.done():
            if not warm and want <= {s.key for s in rec.samples}:
                warm = True
                say({"warm": True})
            await asyncio.wait([eof], timeout=0.05)
    with open(out, "w") as f:
        json.dump({"samples": [asdict(s) for s in rec.samples], "status": rec.status,
                   "undecodable": rec.undecodable, "unknown": rec.unknown, "at": time.time()}, f)
    say({"done": True, "samples": len(rec.samples)})
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devices.scenario.zones")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("field")
    f.add_argument("--scenario", required=True)
    f.add_argument("--config", required=True)
    f.add_argument("--links", default="", help="comma-separated emulated links of the profile")
    f.add_argument("--out", required=True)
    r = sub.add_parser("record")
    r.add_argument("--broker", required=True)
    r.add_argument("--topic", required=True)
    r.add_argument("--config", required=True)
    r.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "field":
        links = frozenset(x for x in a.links.split(",") if x)
        return asyncio.run(field(a.scenario, a.config, links, a.out))
    return asyncio.run(record(a.broker, a.topic, a.config, a.out))


if __name__ == "__main__":
    sys.exit(main())
