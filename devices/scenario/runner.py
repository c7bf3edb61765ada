"""Run a resolved scenario: devices (+ gateway) up, warm-up, timeline on the scenario
clock, expectations judged, report built.

Warm-up: the firmware is held at tick 0 until the gateway has published every point (or
``warmup`` s passed), so the scenario's sim time — and so every value — does not depend
on how long the gateway took to connect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from devices.scenario.clock import ClockedEmulator
from devices.scenario.expect import Verdict, judge
from devices.scenario.inject import Injector
from devices.scenario.ports import free_port
from devices.scenario.recorder import Recorder
from devices.scenario.report import build
from devices.scenario.resolve import Plan

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class RunResult:
    report: dict
    verdicts: list[Verdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors and all(v.passed for v in self.verdicts)


class Timeline:
    """Applies the plan's events from the emulator's tick hook; records what was injected when."""

    def __init__(self, plan: Plan, progress: Progress) -> None:
        self.plan = plan
        self.pending = deque(plan.events)
        self.progress = progress
        self.injector: Injector | None = None
        self.t0 = 0.0
        self.injections: dict[str, dict] = {}
        self.errors: list[str] = []

    async def on_tick(self, k: int, s: float) -> None:
        while self.pending and self.pending[0].t <= s + 1e-9:
            ev = self.pending.popleft()
            now = time.time() - self.t0
            if ev.action == "clear" and ev.fid not in self.injections:
                continue  # its injection failed and is already reported
            try:
                if ev.action == "inject":
                    a = await self.injector.inject(ev.target, ev.fault, fid=ev.fid)
                    pts = a.points or [k_ for d in a.devices for k_ in self.plan.site.device_points[d]]
                    self.injections[ev.fid] = {
                        "id": ev.fid, "step": ev.step, "kind": ev.fault.kind, "target": str(ev.target),
                        "fault": ev.fault.model_dump(), "points": pts, "scheduled_at": ev.t,
                        "injected_at": round(now, 4), "cleared_at": None,
                    }
                else:
                    await self.injector.clear(ev.fid)
                    self.injections[ev.fid]["cleared_at"] = round(now, 4)
                self.progress(f"[{s:7.2f}s] {ev.action:6} {ev.fid}: {ev.fault.kind} on {ev.target}")
            except Exception as e:  # a fault that cannot be applied fails the run, loudly
                msg = f"steps[{ev.step}] at {ev.t:g}s: {ev.action} {ev.fault.kind} on {ev.target} failed: {e}"
                self.errors.append(msg)
                self.progress("ERROR " + msg)


async def run_plan(plan: Plan, broker: str | None = None, devices_only: bool = False, progress: Progress | None = None,
                   warmup: float = 10.0, api: Callable[[Any], Awaitable[Any]] | None = None) -> RunResult:
    """Run the plan; ``broker`` None without ``devices_only`` starts the embedded demo broker."""
    say = progress or (lambda m: log.info("%s", m))
    cfg, scn = plan.cfg, plan.scenario
    tl = Timeline(plan, say)
    emu = ClockedEmulator(cfg, seed=scn.seed, tick=scn.tick, epoch=scn.epoch, on_tick=tl.on_tick)
    tl.injector = Injector(emu, plan.site)
    embedded = None
    if broker is None and not devices_only:
        from gateway.broker import EmbeddedBroker

        embedded = await EmbeddedBroker(port=free_port()).start()
        broker = embedded.url
    prefix = f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/#"
    rec = Recorder(broker, prefix, plan.site.mrid_to_key) if broker else None
    gw = api_srv = None
    try:
        if rec:
            await rec.__aenter__()
        await emu.start()
        if not devices_only:
            from gateway.app import Gateway, GatewayOptions

            gw = Gateway(cfg, GatewayOptions(broker=broker, status_interval=2.0, skip=say,
                                             protocol="3.1.1" if embedded else "5"))  # amqtt speaks 3.1.1 only
            await gw.start()
        if api is not None:  # the live fault API over this run's fault engine (devices/faultapi, by the caller)
            api_srv = await api(tl.injector)
            say(f"fault API on {api_srv.url} (token in {api_srv.state_file})")
        await _warm_up(rec, plan, warmup, say)
        tl.t0 = emu.go()
        for w in plan.warnings:
            say(f"WARNING {w}")
        say(f"scenario {scn.name!r}: seed {scn.seed}, {len(plan.events)} events over {plan.duration:g}s")
        await asyncio.sleep(plan.duration)
    finally:
        if api_srv:
            await api_srv.stop()
        if gw:
            await gw.stop()
        await tl.injector.clear_all()
        await emu.stop()
        if rec:
            await rec.__aexit__()
        if embedded:
            await embedded.stop()
    errors = list(tl.errors) + [f"device {d} not emulated: {why}" for d, why in emu.skipped.items()]
    samples = rec.samples if rec else []
    verdicts = []
    for where, anchor, ex in plan.expectations:
        if rec is None:
            verdicts.append(Verdict(where, getattr(ex, "name", None) or where, False, "no broker to observe; pass --broker"))
            continue
        verdicts.append(judge(where, anchor, ex, samples, tl.t0, plan.site.point))
    extra = {"errors": errors,
             "recorder": {"samples": len(samples), "undecodable": rec.undecodable if rec else 0,
                          "unknown_measurements": rec.unknown if rec else 0},
             "log": [{**e, "at": round(e["at"] - tl.t0, 4)} for e in tl.injector.log]}
    report = build(plan, list(tl.injections.values()), verdicts, samples, tl.t0, extra)
    report["passed"] = report["passed"] and not errors
    return RunResult(report, verdicts, errors)


async def _warm_up(rec: Recorder | None, plan: Plan, limit: float, say: Progress) -> None:
    if rec is None:
        return
    want = set(plan.site.key_to_mrid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if want <= {s.key for s in rec.samples}:
            return
        await asyncio.sleep(0.05)
    missing = sorted(want - {s.key for s in rec.samples})
    say(f"warm-up: after {limit:g}s still no value for {len(missing)} points ({', '.join(missing[:5])}); starting anyway")
