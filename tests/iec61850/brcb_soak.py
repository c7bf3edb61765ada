"""The example site's IEDs with the gateway away: does each buffered RCB keep every change?

Shared by tests/iec61850/test_brcb_soak.py (ten site minutes at ``accel`` × wall speed) and
bench/soak_iec61850_brcb.py (the real ten minutes). The run, in order:

1. the firmware is held; the gateway's MMS driver associates with every IED, purges and enables one
   BRCB each and gets its GI (from here on the IEDs' changes and the gateway's events are counted);
2. the firmware ticks, the gateway receives live reports for a moment, then every association closes
   (the gateway is away) and the site runs ``site_seconds`` more, then the firmware stops;
3. the gateway comes back, resumes each BRCB after the last EntryID it saw, and receives the backlog
   up to the GI that follows the resume.

Equivalence of an accelerated run: a firmware tick is ``tick / accel`` s of wall time but advances
the site ``tick`` s (the same samples, the same deadband decisions, one report per tick as bufTm 5 ms
is shorter than the accelerated tick of 10 ms), and the IEDs' integrity period is divided by ``accel``
too, so the BRCB receives the same entries as in the real run, only faster.

Buffer use is what libiec61850's ReportBuffer (reporting.c, enqueueReport) books for each entry
that is still untransmitted when the gateway comes back, computed from the entries the gateway
receives: the header (32 bytes), the inclusion bit string and the MMS-encoded included values with
one reason byte each (an integrity or GI entry: every value, no reasons), each part 8-byte aligned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes as C
import os
import time
from collections import Counter
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = os.path.join(ROOT, "configs", "primary-substation.yaml")
ENTRY_HEADER = 32  # sizeof(ReportBufferEntry) on a 64-bit build
REASON_GI_OR_INTEGRITY = 8 | 16


def _aligned(n: int) -> int:
    return (n + 7) // 8 * 8


def entry_bytes(report: int) -> tuple[int, bool]:
    """(bytes libiec61850's report buffer books for this report's entry, whether it is a GI report)."""
    from gateway.protocols.iec61850.libiec import lib

    L = lib()
    enc = L.MmsValue_encodeMmsData
    enc.restype, enc.argtypes = C.c_int, [C.c_void_p, C.c_void_p, C.c_int, C.c_bool]
    values = L.ClientReport_getDataSetValues(report)
    n = L.MmsValue_getArraySize(values) if values else 0
    reasons = [L.ClientReport_getReasonForInclusion(report, i) for i in range(n)]
    included = [i for i, r in enumerate(reasons) if r]
    sizes = {}
    for i in included:  # a member not in this report has no value in it (NULL)
        v = L.MmsValue_getElement(values, i)
        sizes[i] = enc(v, None, 0, False) if v else 0
    gi = any(r & 16 for r in reasons)
    if included and all(reasons[i] & REASON_GI_OR_INTEGRITY for i in included):
        return ENTRY_HEADER + _aligned(4 + sum(sizes.values())), gi
    data = sum(sizes.values()) + len(included)
    return ENTRY_HEADER + _aligned((n + 7) // 8) + _aligned(4 + data), gi


@dataclass
class Meter:
    """Counts what one MmsSource receives, by wrapping its report handler (libiec61850's thread)."""

    reports: int = 0
    gi_reports: int = 0
    backlog_bytes: int = 0  # entries received since mark() up to the first GI report
    backlog_entries: int = 0
    overflow_flags: int = 0
    overflow_phases: list[str] = field(default_factory=list)  # "before" (association) or "backlog"
    _counting: bool = False

    def attach(self, src) -> None:  # noqa: ANN001
        inner = src._on_report

        def on_report(r, report: int) -> None:  # noqa: ANN001
            self.reports += 1
            if r.buffered:
                from gateway.protocols.iec61850.libiec import lib

                L = lib()
                if L.ClientReport_hasBufOvfl(report) and L.ClientReport_getBufOvfl(report):
                    self.overflow_flags += 1
                    self.overflow_phases.append("backlog" if self._counting else "before")
                size, gi = entry_bytes(report)
                if gi:
                    self.gi_reports += 1
                    self._counting = False
                elif self._counting:
                    self.backlog_bytes += size
                    self.backlog_entries += 1
            inner(r, report)

        src._on_report = on_report

    def mark(self) -> None:
        """From now on, entries up to the next GI report are the resumed backlog."""
        self._counting = True


@dataclass
class IedResult:
    name: str
    changes: int  # mag/stVal/actVal changes the IED made while counted (beyond the deadbands)
    events: int  # events the gateway received for them (live + backlog), one per change if nothing was lost
    backlog_entries: int
    backlog_bytes: int
    overflows: int  # reports flagged BufOvfl (driver's count)
    resume_gaps: int
    missing: dict[str, int] = field(default_factory=dict)  # point → changes without an event
    overflow_phases: list[str] = field(default_factory=list)


@dataclass
class SoakResult:
    site_seconds: float
    wall_seconds: float
    ticks: int
    ieds: list[IedResult]
    buffer_bytes: int

    @property
    def max_backlog_bytes(self) -> int:
        return max(i.backlog_bytes for i in self.ieds)


def _count_changes(ied, counter: Counter, on: list[bool]) -> None:  # noqa: ANN001
    """Count, per point, the writes that change what the IED serves (past the deadband)."""
    from gateway.protocols.iec61850.libiec import lib, scalar

    L = lib()
    by_attr = {id(a): name for name, a in ied._attrs.items()}
    inner = ied._write

    def served(a) -> tuple:  # noqa: ANN001 - the DA's value as served (an INT64 counter: rounded) and q
        v = L.IedServer_getAttributeValue(ied._server, a.value)
        return (scalar(v) if v else None), a.last_q

    def write(a, value, quality, timestamp) -> None:  # noqa: ANN001
        name = by_attr.get(id(a)) if on[0] else None
        before = served(a) if name is not None else None
        inner(a, value, quality, timestamp)
        if name is not None and served(a) != before:
            counter[name] += 1

    ied._write = write


async def _wait(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def run(site_seconds: float = 600.0, accel: float = 10.0, progress=None) -> SoakResult:  # noqa: ANN001
    """Run the three phases above on the example site's IEDs; every port is a free loopback one."""
    import devices.iec61850.model as model
    import devices.iec61850.server as server
    from devices.emulator import Emulator
    from gateway.config import Config, load_config
    from gateway.pipeline import Backoff
    from gateway.southbound.iec61850 import MmsSource
    from tests.support.mosquitto import free_port
    from tests.support.readings import running

    data = load_config(SITE).model_dump()
    for d in data["devices"]:
        d["port"] = free_port()
    cfg = Config.model_validate(data)
    ieds = [d for d in cfg.devices if d.protocol == "iec61850"]
    tick = 0.1
    t_sim0 = time.time()
    stop_at: list[int | None] = [None]
    frozen = asyncio.Event()
    release = asyncio.Event()

    async def gate(k: int, _s: float) -> None:
        if stop_at[0] is not None and k > stop_at[0]:
            frozen.set()
            await release.wait()

    saved = model.INTEGRITY_MS
    model.INTEGRITY_MS = max(1000, int(saved / accel))  # the same integrity entries per site minute
    try:
        emu = Emulator(cfg, tick=tick / accel, only={d.name for d in ieds}, hold=True,
                       sim_time=lambda k: t_sim0 + k * tick, on_tick=gate)
        await emu.start()
    finally:
        model.INTEGRITY_MS = saved
    try:
        counting = [False]
        changes = {d.name: Counter() for d in ieds}
        for d in ieds:
            _count_changes(emu.devices[d.name].server, changes[d.name], counting)
        srcs = {d.name: MmsSource(d, Backoff(initial=0.2, maximum=1.0)) for d in ieds}
        meters = {n: Meter() for n in srcs}
        for n, s in srcs.items():
            meters[n].attach(s)
        events: dict[str, Counter] = {n: Counter() for n in srcs}

        async with contextlib.AsyncExitStack() as stack:  # phase 1: associate, GI, then count
            sinks = {n: await stack.enter_async_context(running(s)) for n, s in srcs.items()}
            await _wait(lambda: all(m.gi_reports for m in meters.values()), 60, "every IED's GI")
            counting[0] = True
            for sink in sinks.values():
                sink.readings.clear()
            emu.go()
            await _wait(lambda: emu.k >= 20, 60, "live ticks")  # phase 2: live reports, then away
            await _wait(lambda: all(s.stats.entry_ids for s in srcs.values()), 30, "an EntryID from every BRCB")
        for n, sink in sinks.items():
            events[n].update(r.key.rsplit("/", 1)[1] for r in sink.readings if r.event)
        away_from, wall0 = emu.k, time.monotonic()
        stop_at[0] = emu.k + int(round(site_seconds / tick))
        if progress:
            progress(f"gateway away; the site runs {site_seconds:.0f} s ({site_seconds / accel:.0f} s wall)")
        await _wait(frozen.is_set, site_seconds / accel * 5 + 60, "the site's run while the gateway is away")
        wall = time.monotonic() - wall0
        ticks = (stop_at[0] or 0) - away_from
        for m in meters.values():
            m.mark()
        gi_before = {n: m.gi_reports for n, m in meters.items()}
        async with contextlib.AsyncExitStack() as stack:  # phase 3: resume, backlog, GI
            sinks = {n: await stack.enter_async_context(running(s)) for n, s in srcs.items()}
            await _wait(lambda: all(meters[n].gi_reports > gi_before[n] for n in srcs), 120, "the backlog and GI")
        for n, sink in sinks.items():
            events[n].update(r.key.rsplit("/", 1)[1] for r in sink.readings if r.event)
        out = []
        for d in ieds:
            n, s, m = d.name, srcs[d.name], meters[d.name]
            missing = {p: c - events[n][p] for p, c in changes[n].items() if c != events[n][p]}
            out.append(IedResult(n, sum(changes[n].values()), sum(events[n].values()), m.backlog_entries,
                                 m.backlog_bytes, s.stats.buffer_overflows, s.stats.resume_gaps, missing,
                                 list(m.overflow_phases)))
        return SoakResult(site_seconds, wall, ticks, out, server.REPORT_BUFFER_BYTES)
    finally:
        release.set()
        await emu.stop()
