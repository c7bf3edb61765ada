"""The gateway's IEC 61850 (MMS) client: reports first, polling as fallback, controls.

libiec61850 is called through ctypes on one worker thread per device, so a stalled IED
only ever blocks that thread; reports arrive on libiec61850's receive thread and are
handed to the event loop with ``call_soon_threadsafe``. Comms state, backoff and the
INVALID marking on loss come from :class:`DeviceSession`. Reports quiet too long while
the association still answers: a GI is asked, and if it is refused or unanswered the
reported values are re-published QUESTIONABLE|oldData until reports come back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from gateway.pipeline import Backoff, Emit, Reading
from gateway.protocols.iec61850.config import Iec61850Device, MmsPoint
from gateway.protocols.iec61850.libiec import (
    ACSI_CLASS_BRCB,
    ACSI_CLASS_URCB,
    ADD_CAUSES,
    CTL_DIRECT_ENHANCED,
    CTL_SBO_ENHANCED,
    IED_ERRORS,
    MMS_BOOLEAN,
    MMS_FLOAT,
    RCB_ENTRY_ID,
    RCB_GI,
    RCB_OPT_FLDS,
    RCB_PURGE_BUF,
    RCB_RPT_ENA,
    RCB_TRG_OPS,
    REASON_DATA_CHANGE,
    REASON_DATA_UPDATE,
    REASON_QUALITY_CHANGE,
    RPT_OPT_BUF_OVFL,
    RPT_OPT_CONF_REV,
    RPT_OPT_DATA_SET,
    RPT_OPT_ENTRY_ID,
    RPT_OPT_REASON,
    RPT_OPT_SEQ_NUM,
    RPT_OPT_TIME_STAMP,
    TRG_DCHG,
    TRG_GI,
    TRG_INTEGRITY,
    TRG_QCHG,
    TerminationHandler,
    lib,
    octets,
)
from gateway.protocols.iec61850.units import model_factors
from gateway.site.quality import Q
from gateway.southbound.contract import CommandOutcome
from gateway.southbound.degrade import degraded
from gateway.southbound.iec61850.connection import MmsConnection, MmsError
from gateway.southbound.iec61850.goose import attach
from gateway.southbound.iec61850.mapping import (
    Binding,
    covers,
    decode,
    locate,
    split_member,
)
from gateway.southbound.iec61850.units import reader
from gateway.southbound.session import DeviceSession, DriverError

log = logging.getLogger(__name__)

FIRST_REQUEST_TRIES = 3  # libiec61850 occasionally fails the first request of a fresh association
OPT_FLDS = RPT_OPT_SEQ_NUM | RPT_OPT_TIME_STAMP | RPT_OPT_REASON | RPT_OPT_DATA_SET | RPT_OPT_BUF_OVFL | RPT_OPT_ENTRY_ID | RPT_OPT_CONF_REV
EVENT_REASONS = REASON_DATA_CHANGE | REASON_QUALITY_CHANGE | REASON_DATA_UPDATE


@dataclass(kw_only=True)
class ControlResult(CommandOutcome):
    """Outcome of an operate; on refusal ``add_cause`` is the IED's AddCause (IEC 61850-7-2)."""

    error: str | None = None
    add_cause: str | None = None
    add_cause_code: int | None = None


@dataclass
class _Rcb:
    ref: str
    rpt_id: str
    dataset: str
    buffered: bool
    members: list[list[Binding]] = field(default_factory=list)
    spares: list[tuple[str, str]] = field(default_factory=list)  # other free instances (ref, RptID)


@dataclass
class MmsStats:
    reports: int = 0
    values: int = 0
    polls: int = 0
    dropped: int = 0  # readings that could not be decoded or delivered (counted, never silent)
    first_request_retries: int = 0
    resume_gaps: int = 0  # buffered RCBs that could not resume after their EntryID (IED restart)
    buffer_overflows: int = 0  # resumed BRCBs flagging BufOvfl: the IED dropped entries owed to us while we were away
    gi_probes: int = 0  # GIs asked because reports had been quiet too long
    gi_refused: int = 0  # ... that the IED refused (the association itself still answered)
    report_silences: int = 0  # times reported values were marked QUESTIONABLE|oldData (reporting stalled)
    entry_ids: dict[str, bytes] = field(default_factory=dict)


class MmsSource(DeviceSession):
    protocol = "iec61850"

    def __init__(self, device: Iec61850Device, backoff: Backoff | None = None) -> None:
        super().__init__(device, backoff)
        self.cfg: Iec61850Device = device
        self.points = {p.name: p for p in device.points}
        self.stats = MmsStats()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mms-{device.name}")
        self._conn: MmsConnection | None = None
        self._rcbs: list[_Rcb] = []
        self._polled: dict[tuple[str, str], list[Binding]] = {}
        self._emit: Emit | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_rx = 0.0
        self._last_report = 0.0  # time.monotonic() of the last report (set on libiec61850's thread)
        self._owed: set[str] = set()  # buffered RCBs this session resumed: their BufOvfl means entries lost
        self._events_seen: dict[str, tuple] = {}  # point key → (value, t) of the last reading passed on
        self._goose = None  # GooseSubscriber while associated (iec61850.goose_subscribe)
        self._gi_at: float | None = None  # monotonic time of the outstanding silence GI
        self._silent = False  # reported values are marked QUESTIONABLE|oldData
        self._gi_task: asyncio.Task | None = None

    # ------------------------------------------------------------ DeviceSession

    async def _call(self, fn, *args, timeout: float | None = None):
        fut = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        return await asyncio.wait_for(fut, timeout or self.cfg.timeout * 4)

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._emit = None
        await self._call(self._open, timeout=self.cfg.timeout * 2 + 5)

    async def close(self) -> None:
        """Runs on the worker thread after whatever is still running there (an abandoned connect
        finishes first), so no association is ever left open behind the session's back."""
        try:
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(self._pool, self._close_conn))
        except Exception as e:  # must not raise
            log.debug("%s: close: %s", self.device, e)

    def _close_conn(self) -> None:
        goose, self._goose = getattr(self, "_goose", None), None
        if goose is not None:
            goose.stop()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def serve(self, emit: Emit) -> None:
        self._emit = emit
        await self._call(self._enable_reports, timeout=self.cfg.timeout * 4 + 5)
        interval = self.cfg.poll_interval
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        self._last_rx = loop.time()
        self._last_report, self._gi_at, self._silent = time.monotonic(), None, False
        while True:
            conn = self._conn
            if conn is None or not conn.alive:
                raise DriverError("MMS association closed")
            now = loop.time()
            if self._polled and now >= next_poll:
                await self._call(self._poll, timeout=self.cfg.timeout * 2)
                self.state.polls += 1
                self.state.last_ok = time.time()
                self._last_rx = loop.time()
                next_poll += interval
                if next_poll < now:
                    next_poll = now + interval
            elif self._rcbs and self._report_watch():
                pass
            elif now - self._last_rx > max(2 * interval, 1.0):  # watchdog: is a quiet association still alive?
                await self._call(self._probe, timeout=self.cfg.timeout * 2)
                self._last_rx = loop.time()
                self.state.last_ok = time.time()
            await asyncio.sleep(min(interval, 0.2))

    @property
    def report_silence(self) -> float:
        """Seconds without any report before a GI is asked: quiet is normal for discretes, so not too eager."""
        return max(4 * self.cfg.poll_interval, 5.0)

    def _report_watch(self) -> bool:
        """Reports quiet too long while the association lives (an IED whose reporting stalled):
        ask a GI; refused or unanswered within ``timeout`` → every reported value is
        re-published QUESTIONABLE|oldData until a report arrives again (then a GI refreshes all).
        Returns True when it scheduled work this turn."""
        mono = time.monotonic()
        if self._silent and self._last_report > (self._gi_at or 0.0):
            self._silent, self._gi_at = False, None  # reporting is back; GI so unchanged members turn GOOD too
            log.info("%s: reports resumed; general interrogation follows", self.device)
            self._gi_task = asyncio.get_running_loop().create_task(self._ask_gi())
            return True
        if mono - self._last_report < self.report_silence:
            self._gi_at = None
            return False
        if self._gi_at is None or mono - self._gi_at > self.report_silence:
            self._gi_at = mono
            self._gi_task = asyncio.get_running_loop().create_task(self._ask_gi())
            return True
        if not self._silent and mono - self._gi_at > self.cfg.timeout:
            self._silent = True
            self.stats.report_silences += 1
            log.warning("%s: no report for %.0f s and none after a GI although the association answers; "
                        "reported values marked QUESTIONABLE|oldData", self.device, mono - self._last_report)
            self._mark_silent()
            return True
        return False

    async def _ask_gi(self) -> None:
        self.stats.gi_probes += 1
        try:
            await self._call(self._gi, timeout=self.cfg.timeout * 2)
        except MmsError as e:
            self.stats.gi_refused += 1
            log.info("%s: GI refused (%s)", self.device, e)
        except Exception as e:  # the serve loop's own checks notice a dead association
            log.debug("%s: GI failed: %s", self.device, e)

    def _gi(self) -> None:
        conn = self._conn
        if conn is None:
            raise DriverError("not connected")
        L = lib()
        for r in self._rcbs:
            rcb = conn.get_rcb(r.ref)
            try:
                L.ClientReportControlBlock_setGI(rcb, True)
                conn.set_rcb(rcb, RCB_GI, f"general interrogation {r.ref}")
            finally:
                L.ClientReportControlBlock_destroy(rcb)

    def _mark_silent(self) -> None:
        emit = self._emit
        if emit is None:
            return
        now = time.time()
        reported = {b.key for r in self._rcbs for m in r.members for b in m}
        for key in reported:
            last = self.last.get(key)
            if last is not None:
                emit(degraded(last, Q.OLD_DATA, now))

    # ------------------------------------------------------------ worker-thread side

    def _open(self) -> None:
        """Associate; a fresh association whose first request fails (a libiec61850 quirk, ~2 % of
        connects, the association then stays dead) is replaced by a new one, up to 3 times."""
        for attempt in range(FIRST_REQUEST_TRIES):
            tick = self.cfg.iec61850.receive_tick_ms / 1000 or None
            conn = MmsConnection(self.cfg.host, self.cfg.port, self.cfg.timeout, tick)
            try:
                conn.connect()
                try:
                    self._first_request(conn)
                except MmsError:
                    if attempt == FIRST_REQUEST_TRIES - 1:
                        raise
                    self.stats.first_request_retries += 1
                    conn.close()
                    continue
                self._bind(conn)
                if self.cfg.iec61850.goose_subscribe:
                    self._goose = attach(self.device, self.cfg.iec61850.goose_subscribe, conn, self.cfg.points,
                                         self._goose_reading)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            return

    def _first_request(self, conn: MmsConnection) -> None:
        ld = self.cfg.points[0].reference.split("/", 1)[0]
        try:
            lib().MmsValue_delete(conn.read(f"{ld}/LLN0.Mod.stVal", "ST"))
        except MmsError as e:
            if e.code not in (22, 27, 24):  # no LLN0.Mod: a model without it is still usable
                raise

    def _probe(self) -> None:
        if self._conn is None:
            raise DriverError("not connected")
        self._first_request(self._conn)

    def _binding(self, p: MmsPoint, path, qpath, tpath) -> Binding:
        factor = getattr(self, "_factors", {}).get(p.name)
        return Binding(f"{self.device}/{p.name}", p, path, qpath, tpath, p.measurement.kind == "Discrete", factor)

    def _bind(self, conn: MmsConnection) -> None:
        """Find an RCB for every point (data set membership), the rest is polled."""
        L = lib()
        self._rcbs, self._polled = [], {}
        read = reader(conn)
        try:
            self._factors = model_factors(read, self.cfg.points, self.device)
        finally:
            read.close()
        pending = {p.name: p for p in self.cfg.points}
        opts = self.cfg.iec61850
        if opts.reports:
            lds = list(dict.fromkeys(p.reference.split("/", 1)[0] for p in self.cfg.points))
            for ld in lds:
                for rcb in self._choose_rcbs(conn, ld, opts.buffered):
                    for member in conn.dataset_members(rcb.dataset):
                        ref, fc = split_member(member)
                        spec = None
                        found: list[Binding] = []
                        for name, p in list(pending.items()):
                            names = covers(ref, p.reference)
                            if names is None or fc != ("ST" if p.fc == "CO" else p.fc):
                                continue
                            spec = spec or conn.spec(ref, fc)
                            loc = locate(spec, names) if names else ((), None, None)
                            if loc is None:
                                continue
                            found.append(self._binding(p, *loc))
                            del pending[name]
                        if spec:
                            L.MmsVariableSpecification_destroy(spec)
                        rcb.members.append(found)
                    if any(rcb.members):
                        self._rcbs.append(rcb)
        for p in pending.values():  # polling fallback, one read per data object
            ld, rest = p.reference.split("/", 1)
            parts = rest.split(".")
            do_ref = f"{ld}/{parts[0]}.{parts[1]}"
            fc = "ST" if p.fc == "CO" else p.fc
            spec = conn.spec(do_ref, fc)
            try:
                loc = locate(spec, tuple(parts[2:]))
            finally:
                L.MmsVariableSpecification_destroy(spec)
            if loc is None:
                raise DriverError(f"point {p.name}: {p.reference}[{fc}] does not exist on the IED; fix the reference")
            self._polled.setdefault((do_ref, fc), []).append(self._binding(p, *loc))

    def _choose_rcbs(self, conn: MmsConnection, ld: str, buffered: bool) -> list[_Rcb]:
        """One free RCB per data set, preferring the instance this session used before (EntryID resume)."""
        L = lib()
        cls, fc = (ACSI_CLASS_BRCB, "BR") if buffered else (ACSI_CLASS_URCB, "RP")
        try:
            names = sorted(conn.ln_directory(f"{ld}/LLN0", cls))
        except MmsError:
            return []
        used = {r.ref for r in self._rcbs}
        previous = set(self.stats.entry_ids)
        names.sort(key=lambda n: f"{ld}/LLN0.{fc}.{n}" not in previous)
        by_ds: dict[str, _Rcb] = {}
        for n in names:
            ref = f"{ld}/LLN0.{fc}.{n}"
            if ref in used:
                continue
            rcb = conn.get_rcb(ref)
            try:
                ds = (L.ClientReportControlBlock_getDataSetReference(rcb) or b"").decode().replace("$", ".")
                busy = L.ClientReportControlBlock_getRptEna(rcb) or (not buffered and L.ClientReportControlBlock_getResv(rcb))
                rpt_id = (L.ClientReportControlBlock_getRptId(rcb) or b"").decode() or ref
            finally:
                L.ClientReportControlBlock_destroy(rcb)
            if not ds or busy:
                continue
            if ds in by_ds:
                by_ds[ds].spares.append((ref, rpt_id))
            else:
                by_ds[ds] = _Rcb(ref, rpt_id, ds, buffered)
        return list(by_ds.values())

    def _enable_reports(self) -> None:
        conn = self._conn
        assert conn is not None
        for r in self._rcbs:
            for ref, rpt_id in [(r.ref, r.rpt_id), *r.spares]:
                r.ref, r.rpt_id = ref, rpt_id
                try:
                    self._enable(conn, r)
                    break
                except MmsError as e:
                    if e.code not in (21, 26) or not conn.alive:  # not "taken by another client"
                        raise
                    lib().IedConnection_uninstallReportHandler(conn.con, ref.encode())
                    log.info("%s: %s taken by another client, trying the next instance", self.device, ref)
            else:
                raise DriverError(f"every report control block for data set {r.dataset} is in use by other clients")
        if self._rcbs:
            log.info("%s: %d report control blocks enabled, %d data objects polled", self.device, len(self._rcbs), len(self._polled))

    def _enable(self, conn: MmsConnection, r: _Rcb) -> None:
        L = lib()
        conn.on_report(r.ref, r.rpt_id, self._make_handler(r))
        rcb = conn.get_rcb(r.ref)
        try:
            # integrity too: its period (IntgPd) stays as the IED is configured
            L.ClientReportControlBlock_setTrgOps(rcb, TRG_DCHG | TRG_QCHG | TRG_INTEGRITY | TRG_GI)
            L.ClientReportControlBlock_setOptFlds(rcb, OPT_FLDS)
            conn.set_rcb(rcb, RCB_TRG_OPS | RCB_OPT_FLDS, f"configure {r.ref}")
            if r.buffered:
                self._resume(conn, rcb, r)
            L.ClientReportControlBlock_setRptEna(rcb, True)
            conn.set_rcb(rcb, RCB_RPT_ENA, f"enable {r.ref}")
            L.ClientReportControlBlock_setGI(rcb, True)
            conn.set_rcb(rcb, RCB_GI, f"general interrogation {r.ref}")
        finally:
            L.ClientReportControlBlock_destroy(rcb)

    def _resume(self, conn: MmsConnection, rcb: int, r: _Rcb) -> None:
        """Continue a buffered RCB after the last EntryID seen; first time, purge the stale backlog.

        An IED that no longer knows the EntryID (it restarted) gets its whole buffer read:
        everything since its restart is new to us, and the gap is counted and logged."""
        L = lib()
        entry = self.stats.entry_ids.get(r.ref)
        if entry is not None:
            self._owed.add(r.ref)
        if entry is None:
            L.ClientReportControlBlock_setPurgeBuf(rcb, True)
            conn.set_rcb(rcb, RCB_PURGE_BUF, f"purge {r.ref}")
            return
        v = L.MmsValue_newOctetString(len(entry), len(entry))
        L.MmsValue_setOctetString(v, entry, len(entry))
        L.ClientReportControlBlock_setEntryId(rcb, v)
        L.MmsValue_delete(v)
        try:
            conn.set_rcb(rcb, RCB_ENTRY_ID, f"resume {r.ref}")
        except MmsError as e:
            if not conn.alive:
                raise
            self.stats.resume_gaps += 1
            del self.stats.entry_ids[r.ref]
            log.warning("%s: %s cannot resume after EntryID %s (%s; IED restarted?): reading its whole buffer",
                        self.device, r.ref, entry.hex(), e)

    def _make_handler(self, r: _Rcb):
        def on_report(_param: int, report: int) -> None:
            try:
                self._on_report(r, report)
            except Exception:  # never unwind into C
                log.exception("%s: report from %s could not be decoded", self.device, r.ref)
                self.stats.dropped += 1

        return on_report

    def _on_report(self, r: _Rcb, report: int) -> None:
        """libiec61850's receive thread: decode, then hand the Readings to the loop."""
        L = lib()
        values = L.ClientReport_getDataSetValues(report)
        out: list[Reading] = []
        now = time.time()
        if values:
            n = min(L.MmsValue_getArraySize(values), len(r.members))
            for i in range(n):
                bindings = r.members[i]
                if not bindings:
                    continue
                reason = L.ClientReport_getReasonForInclusion(report, i)
                if reason == 0:
                    continue
                fcd = L.MmsValue_getElement(values, i)
                for b in bindings:
                    out.append(decode(b, fcd, bool(reason & EVENT_REASONS), now))
        if r.buffered and L.ClientReport_hasBufOvfl(report) and L.ClientReport_getBufOvfl(report):
            if r.ref in self._owed:  # resuming (or could not): entries we were owed are gone
                self.stats.buffer_overflows += 1
                log.warning("%s: %s reports a buffer overflow on the IED: events were lost before this report",
                            self.device, r.ref)
            else:  # first association (libiec61850 flags every new buffer): purged anyway, GI gives the state
                log.info("%s: %s flags an overflow before the first association (backlog purged, GI follows)",
                         self.device, r.ref)
        entry = L.ClientReport_getEntryId(report)
        if entry and r.buffered:
            self.stats.entry_ids[r.ref] = octets(entry)
        self.stats.reports += 1
        self._last_report = time.monotonic()
        loop = self._loop
        if loop is not None and out:
            loop.call_soon_threadsafe(self._deliver, out)
        elif loop is not None:
            loop.call_soon_threadsafe(self._touch)

    def _touch(self) -> None:
        if self._loop:
            self._last_rx = self._loop.time()

    def _deliver(self, readings: list[Reading]) -> None:
        self._touch()
        self.state.last_ok = time.time()
        emit = self._emit
        if emit is None:  # between associations: counted, not silently lost
            self.stats.dropped += len(readings)
            return
        self.stats.values += len(readings)
        seen = self._events_seen
        for rd in readings:
            k = (rd.value, rd.timestamp)
            if rd.event and seen.get(rd.key) == k:
                # the same sample again: by report and by GOOSE, from a resumed buffer, or an unchanged
                # phase of a WYE whose other phase changed (already passed on by GI): passed on once
                continue
            seen[rd.key] = k
            emit(rd)

    def _goose_reading(self, r: Reading) -> None:
        """libiec61850's GOOSE receive thread."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._deliver, [r])

    def _poll(self) -> None:
        conn = self._conn
        if conn is None:
            raise DriverError("not connected")
        L = lib()
        out: list[Reading] = []
        now = time.time()
        for (ref, fc), bindings in self._polled.items():
            v = conn.read(ref, fc)
            try:
                for b in bindings:
                    out.append(decode(b, v, False, now))
            finally:
                L.MmsValue_delete(v)
        self.stats.polls += 1
        if out and self._loop:
            self._loop.call_soon_threadsafe(self._deliver, out)

    def status_counters(self) -> dict[str, int]:
        """Report/poll/control counters for the status topic (EntryIDs are state, not counters)."""
        return {k: v for k, v in dataclasses.asdict(self.stats).items() if k != "entry_ids"}

    # ------------------------------------------------------------ controls

    async def operate(self, point_name: str, value: float | int | bool, mode: Literal["direct", "sbo"] = "direct") -> ControlResult:
        """Operate a controllable point (DPC/SPC/APC ...); ``sbo`` selects with value first."""
        p = self.points.get(point_name)
        if p is None:
            return ControlResult(ok=False, point=point_name, mode=mode, value=value, outcome="refused", error=f"no point {point_name!r} on {self.device}")
        if self._conn is None or not self.connected:
            return ControlResult(ok=False, point=point_name, mode=mode, value=value, outcome="not_connected", error="IED not connected")
        try:
            return await self._call(self._operate, p, value, mode, timeout=self.cfg.timeout * 4)
        except (TimeoutError, DriverError, OSError) as e:
            return ControlResult(ok=False, point=point_name, mode=mode, value=value, outcome="timed_out" if isinstance(e, TimeoutError) else "not_connected",
                                 error=str(e) or "timeout")

    def _operate(self, p: MmsPoint, value: float | int | bool, mode: str) -> ControlResult:
        conn = self._conn
        if conn is None:
            raise DriverError("not connected")
        L = lib()
        ld, rest = p.reference.split("/", 1)
        parts = rest.split(".")
        do_ref = f"{ld}/{parts[0]}.{parts[1]}"
        co = L.ControlObjectClient_create(do_ref.encode(), conn.con)
        if not co:
            return ControlResult(ok=False, point=p.name, mode=mode, value=value, outcome="refused", error=f"{do_ref} is not a controllable object")
        ctl = None
        terminated = threading.Event()
        on_term = TerminationHandler(lambda _param, _co: terminated.set())
        try:
            L.ControlObjectClient_setOrigin(co, b"gridgate", 3)  # orCat remote-control
            L.ControlObjectClient_setCommandTerminationHandler(co, on_term, None)
            ctl = _ctl_value(L.ControlObjectClient_getCtlValType(co), value, p)
            if mode == "sbo" and not L.ControlObjectClient_selectWithValue(co, ctl):
                return _refused(L, co, p, value, mode, "select refused")
            if not L.ControlObjectClient_operate(co, ctl, 0):
                return _refused(L, co, p, value, mode, "operate refused")
            if L.ControlObjectClient_getControlModel(co) in (CTL_DIRECT_ENHANCED, CTL_SBO_ENHANCED):
                # enhanced security: the outcome is the CommandTermination, not the operate response
                if not terminated.wait(self.cfg.timeout * 2):
                    return ControlResult(ok=False, point=p.name, mode=mode, value=value, outcome="timed_out",
                                         error="no CommandTermination from the IED")
                appl = L.ControlObjectClient_getLastApplError(co)
                if appl.error or appl.addCause:
                    return _refused(L, co, p, value, mode, "command terminated negatively")
            return ControlResult(ok=True, point=p.name, mode=mode, value=value, outcome="accepted")
        finally:
            if ctl:
                L.MmsValue_delete(ctl)
            L.ControlObjectClient_destroy(co)


def _ctl_value(mms_type: int, value: float | int | bool, p: MmsPoint) -> int:
    L = lib()
    if mms_type == MMS_BOOLEAN:
        if p.measurement.type == "SwitchPosition" and not isinstance(value, bool):
            return L.MmsValue_newBoolean(int(value) == 2)  # double-point code: 2 closed → true, 1 open → false
        return L.MmsValue_newBoolean(bool(value))
    if mms_type == MMS_FLOAT:
        return L.MmsValue_newFloat(float(value))
    return L.MmsValue_newIntegerFromInt32(int(value))


def _refused(L, co: int, p: MmsPoint, value, mode: str, what: str) -> ControlResult:
    appl = L.ControlObjectClient_getLastApplError(co)
    err = L.ControlObjectClient_getLastError(co)
    cause = ADD_CAUSES.get(appl.addCause, str(appl.addCause)) if appl.error or appl.addCause else None
    return ControlResult(
        ok=False, point=p.name, mode=mode, value=value, outcome="device_error",
        error=f"{what} ({IED_ERRORS.get(err, err)})" if err else what, add_cause=cause, add_cause_code=appl.addCause if cause else None,
    )
