"""An emulated IEC 61850 IED: a libiec61850 MMS server whose model comes from the device's points.

Runs inside the emulator's process. ``update()`` is called from asyncio whenever the simulated
firmware changes a point; controls arrive on libiec61850's thread and are handed to asyncio
(``on_control``) without blocking that thread: the handler answers WAITING until the
emulator's verdict is in, then OK or FAILED with AddCause Blocked-by-process.
Comms faults (report suppression, refused controls, association abort) come from
``self.faults`` (devices/iec61850/faults.py), set by the scenario fault engine.
"""

from __future__ import annotations

import asyncio
import ctypes as C
import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from devices.iec61850.faults import IedFaults, abort_connections
from devices.iec61850.model import ModelError, build, parse_ref, plan
from devices.iec61850.walk import status_pairs, wlib
from devices.netguard import ConnGuard, ForeignGuard, GuardLimits
from gateway.protocols.iec61850.config import Iec61850Device, MmsPoint
from gateway.protocols.iec61850.libiec import (
    ADD_CAUSE_BLOCKED_BY_PROCESS,
    CB_ACCESS_WRITE,
    CONTROL_ACCEPTED,
    CONTROL_RESULT_FAILED,
    CONTROL_RESULT_OK,
    CONTROL_RESULT_WAITING,
    IEC61850_BOOLEAN,
    IEC61850_CODEDENUM,
    IEC61850_ENUMERATED,
    IEC61850_FLOAT32,
    IEC61850_FLOAT64,
    IEC61850_INT32,
    IEC61850_INT32U,
    IEC61850_INT64,
    CheckHandler,
    ControlBlockAccessHandler,
    ControlHandler,
    Timestamp,
    lib,
    scalar,
)
from gateway.protocols.iec61850.units import model_factors

log = logging.getLogger(__name__)

OnControl = Callable[[str, "int | float"], bool]
CONTROL_VERDICT_TIMEOUT = 5.0
CONTROL_OBJECT_ACCESS_DENIED = 3  # CheckHandlerResult
SCL_SUFFIXES = (".cid", ".icd", ".scd", ".iid", ".xml")
#: the libiec61850 build in pyiec61850-ng accepts at most this many MMS connections (compile-time
#: CONFIG_MAXIMUM_TCP_CLIENT_CONNECTIONS; a higher IedServerConfig value has no effect): measured
LIBIEC_MAX_CONNECTIONS = 5
REPORT_BUFFER_BYTES = 1_000_000  # per BRCB: ~10k single-value entries kept while the gateway is away


@dataclass
class _Attr:
    """The three DAs one point update touches (value, and the q/t of its DO), and what else follows:
    instMag and the deadbands of a measured value, the controller position and OpCnt of a switch."""

    value: int
    type: int
    q: int | None
    t: int | None
    inst: int | None = None  # instMag.f / instCVal.mag.f: every sample
    db: float = 0.0  # absolute deadband of mag (served units), from db × rangeC
    zero_db: float = 0.0
    last: float | int | bool | None = None  # last value written to the DA (for deadband and OpCnt)
    last_q: int | None = None
    follower: "_Attr | None" = None  # CSWIn.Pos.stVal follows XCBRn.Pos.stVal
    op_cnt: "_Attr | None" = None  # XCBRn.OpCnt.stVal counts position changes
    blk: tuple[int | None, int | None] = (None, None)  # BlkOpn.stVal, BlkCls.stVal
    loc: int | None = None  # Loc.stVal
    factor: float | None = None  # engineering = raw × factor, from the model's units (None: the point's scale)


class Iec61850Ied:
    """``start()``/``stop()`` are synchronous; call ``start()`` from the emulator's event loop
    thread so controls are delivered on that loop."""

    def __init__(self, device: Iec61850Device, on_control: OnControl | None = None) -> None:
        self.device = device
        self.on_control = on_control
        self.points = {p.name: p for p in device.points}
        self._server: int | None = None
        self._model: int | None = None
        self._attrs: dict[str, _Attr] = {}
        self._handlers: list[object] = []  # ctypes callbacks must outlive the server
        self._ctl_points: list[MmsPoint] = []
        self._local: list[_Attr] = []  # BlkOpn/BlkCls stVal, operated by the IED itself
        self._own: set[str] | None = None  # DOs whose value the IED itself sets (None: a user's model)
        self._pending: dict[int, dict] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.controls = 0
        self.updates = 0
        self.port = device.port
        self.faults = IedFaults()  # replaced as a whole by the fault engine (devices/scenario/inject.py)
        self.counters = {"silent_updates": 0, "rcb_writes_refused": 0, "controls_refused": 0, "aborted": 0}
        c = device.connections
        # one slot of libiec61850's fixed maximum stays free for a newcomer; the guard then frees another
        limits = GuardLimits.of(c)
        limits = dataclasses.replace(limits, max_connections=max(1, min(c.max_connections, LIBIEC_MAX_CONNECTIONS - 1)))
        self.guard = ConnGuard(f"IED {device.name}", limits)
        self._inspect: ForeignGuard | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        L = lib()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        scl = self.device.iec61850.scl
        if scl and scl.lower().endswith(SCL_SUFFIXES):
            from devices.iec61850.scl_in import load_scl

            self._model, meta = load_scl(scl, self.device.iec61850.ied_name)
            self._own = meta.own
            for skipped in meta.skipped:
                log.warning("IED %s: %s: %s", self.device.name, scl, skipped)
        elif scl:
            self._model, self._own = _load_model_file(scl), None
        else:
            pl = plan(self.device)
            self._model = build(pl)
            self._own = pl.own
        try:
            self._resolve()
        except ModelError:
            self.stop()
            raise
        cfg = L.IedServerConfig_create()
        L.IedServerConfig_setReportBufferSize(cfg, REPORT_BUFFER_BYTES)
        # one spare slot above the cap: a newcomer always gets in, the guard then closes the oldest idle one
        L.IedServerConfig_setMaxMmsConnections(cfg, LIBIEC_MAX_CONNECTIONS)
        self._server = L.IedServer_createWithConfig(self._model, None, cfg)
        L.IedServerConfig_destroy(cfg)
        self._resolve_links()
        self._install_controls()
        cb = ControlBlockAccessHandler(self._rcb_access)
        self._handlers.append(cb)
        lib().IedServer_setControlBlockAccessHandler(self._server, cb, None)
        self._initialise()
        goose_if = self.device.iec61850.goose_interface
        if goose_if:
            from devices.iec61850 import goose

            try:
                goose.start_publishing(self._server, goose_if)
            except OSError:
                self.stop()
                raise
        L.IedServer_setLocalIpAddress(self._server, self.device.host.encode())
        L.IedServer_start(self._server, self.device.port)
        if goose_if:
            goose.enable(self._server)
        if not L.IedServer_isRunning(self._server):
            self.stop()
            raise OSError(f"IED {self.device.name}: cannot listen on {self.device.host}:{self.device.port} (port in use?)")
        if self._loop is not None:
            self._inspect = ForeignGuard(self.guard, self.device.host, self.device.port)
            self._inspect.start(self._loop)
        log.info("IED %s serving MMS on %s:%s", self.device.name, self.device.host, self.device.port)

    def _initialise(self) -> None:
        """Every q/t in the model: the IED's own state (Beh, Health, Loc, OpCnt, ...) GOOD, anything the
        firmware feeds INVALID until it writes, anything nothing feeds INVALID for good; all stamped
        with the start time (never 1970)."""
        L, ts = lib(), Timestamp()
        L.Timestamp_setTimeInNanoseconds(C.byref(ts), int(time.time() * 1e6) * 1000)
        fed = {a.q for a in self._attrs.values() if a.q} | {
            a.follower.q for a in self._attrs.values() if a.follower is not None and a.follower.q
        }
        for ref, q, t in status_pairs(self._model):
            if self._own is not None or q in fed:  # a user's model: its own values stay as it gives them
                L.IedServer_updateQuality(self._server, q, 0 if self._own and ref in self._own else 0x2)
            L.IedServer_updateTimestampAttributeValue(self._server, t, C.byref(ts))

    def stop(self) -> None:
        L = lib()
        if self._inspect is not None:
            self._inspect.stop()
            self._inspect = None
        if self._server:
            L.IedServer_stop(self._server)
            L.IedServer_destroy(self._server)
            self._server = None
        if self._model:
            L.IedModel_destroy(self._model)
            self._model = None

    @property
    def running(self) -> bool:
        return bool(self._server) and bool(lib().IedServer_isRunning(self._server))

    @property
    def connections(self) -> int:
        return lib().IedServer_getNumberOfOpenConnections(self._server) if self._server else 0

    # ------------------------------------------------------------ data

    def update(self, point_name: str, value: float | int | bool, quality: int, timestamp: float) -> None:
        """Set a point's DA (from the engineering value: the gateway's scale/offset/value_map undone),
        its DO's q and t in one locked step, so one report carries all three."""
        self.update_many([(point_name, value, quality, timestamp)])

    def update_many(self, items: list[tuple[str, float | int | bool, int, float]]) -> None:
        """Several points under one lock (one report per burst instead of one per point)."""
        for name, *_ in items:
            if name not in self._attrs:
                raise KeyError(f"IED {self.device.name} has no point {name!r}")
        L = lib()
        L.IedServer_lockDataModel(self._server)
        try:
            write = self._write_silent if self.faults.suppress_reports else self._write
            for name, value, quality, ts in items:
                a = self._attrs[name]
                raw = to_raw(self.points[name], value) if a.factor is None else _by_factor(value, a.factor)
                write(a, raw, quality, ts)
        finally:
            L.IedServer_unlockDataModel(self._server)

    def _write(self, a: _Attr, value: float | int | bool, quality: int, timestamp: float) -> None:
        L, s = lib(), self._server
        t = a.type
        if t in (IEC61850_FLOAT32, IEC61850_FLOAT64):
            value = float(value)
            if a.inst:
                L.IedServer_updateFloatAttributeValue(s, a.inst, value)  # instMag: every sample, no trigger
            if abs(value) <= a.zero_db:
                value = 0.0
            if a.last is not None and abs(value - a.last) <= a.db and quality == a.last_q:
                self.updates += 1  # inside the deadband: mag, q and t stay as reported
                return
            L.IedServer_updateFloatAttributeValue(s, a.value, value)
        elif t == IEC61850_CODEDENUM:
            L.IedServer_updateDbposValue(s, a.value, int(value) & 3)
        elif t in (IEC61850_INT32, IEC61850_ENUMERATED):
            L.IedServer_updateInt32AttributeValue(s, a.value, int(round(value)))
        elif t == IEC61850_INT64:
            L.IedServer_updateInt64AttributeValue(s, a.value, int(round(value)))
        elif t == IEC61850_INT32U:
            L.IedServer_updateUnsignedAttributeValue(s, a.value, int(round(value)))
        elif t == IEC61850_BOOLEAN:
            L.IedServer_updateBooleanAttributeValue(s, a.value, bool(value))
        if a.t:
            ts = Timestamp()  # per call: the control thread writes too
            L.Timestamp_setTimeInNanoseconds(C.byref(ts), int(round(timestamp * 1e6)) * 1000)
            L.IedServer_updateTimestampAttributeValue(s, a.t, C.byref(ts))
        if a.q:
            L.IedServer_updateQuality(s, a.q, int(quality) & 0xFFFF)
        if a.follower is not None:
            self._write(a.follower, value, quality, timestamp)
        if a.op_cnt is not None and a.last in (1, 2) and int(value) in (1, 2) and int(value) != a.last:
            n = int(a.op_cnt.last or 0) + 1
            self._write(a.op_cnt, n, 0, timestamp)
        a.last, a.last_q = value, quality
        self.updates += 1

    def _write_silent(self, a: _Attr, value: float | int | bool, quality: int, timestamp: float) -> None:
        """Report suppression: the model's MmsValues change in place (reads see them), no report trigger."""
        L, s = lib(), self._server
        v = L.IedServer_getAttributeValue(s, a.value)
        t = a.type
        if v:
            if t in (IEC61850_FLOAT32, IEC61850_FLOAT64):
                L.MmsValue_setFloat(v, float(value))
            elif t == IEC61850_CODEDENUM:
                L.Dbpos_toMmsValue(v, int(value) & 3)
            elif t in (IEC61850_INT32, IEC61850_ENUMERATED):
                L.MmsValue_setInt32(v, int(round(value)))
            elif t == IEC61850_INT64:
                L.MmsValue_setInt64(v, int(round(value)))
            elif t == IEC61850_INT32U:
                L.MmsValue_setUint32(v, int(round(value)))
            elif t == IEC61850_BOOLEAN:
                L.MmsValue_setBoolean(v, bool(value))
        if a.t and (tv := L.IedServer_getAttributeValue(s, a.t)):
            L.MmsValue_setUtcTimeMs(tv, int(round(timestamp * 1000)))
        if a.q and (qv := L.IedServer_getAttributeValue(s, a.q)):
            L.MmsValue_setBitStringFromInteger(qv, int(quality) & 0xFFFF)
        self.updates += 1
        self.counters["silent_updates"] += 1

    def _rcb_access(self, _param, _conn, _acsi, _ld, _ln, _name, _sub, access: int) -> bool:
        """libiec61850's thread: while reports are suppressed, RCB writes (GI, RptEna) are refused."""
        if access == CB_ACCESS_WRITE and self.faults.suppress_reports:
            self.counters["rcb_writes_refused"] += 1
            return False
        return True

    def set_local(self, local: bool) -> None:
        """The bay's local/remote switch (XCBR/XSWI Loc): while local, remote operates are refused with
        AddCause Blocked-by-switching-hierarchy."""
        L = lib()
        for a in self._attrs.values():
            if a.loc:
                do = wlib().ModelNode_getParent(a.loc)
                loc = _Attr(a.loc, IEC61850_BOOLEAN, L.ModelNode_getChild(do, b"q"), L.ModelNode_getChild(do, b"t"))
                L.IedServer_lockDataModel(self._server)
                try:
                    self._write(loc, bool(local), 0, time.time())
                finally:
                    L.IedServer_unlockDataModel(self._server)

    def abort_associations(self) -> int:
        """Drop every client association now (TCP shut down); new ones are accepted as usual."""
        n = abort_connections(self.device.host, self.device.port)
        self.counters["aborted"] += n
        log.info("IED %s: %d association(s) aborted", self.device.name, n)
        return n

    def _resolve(self) -> None:
        """Find the DA, q and t nodes of every point; a missing one is a config error."""
        L = lib()
        errors = []
        for i, p in enumerate(self.device.points):
            node = L.IedModel_getModelNodeByObjectReference(self._model, p.reference.encode())
            if not node:
                errors.append(
                    f"devices[{self.device.name}].points[{i}] ({p.name}): {p.reference} is not in the served model"
                )
                continue
            t = L.DataAttribute_getType(node)
            q = ts = None
            parts = p.reference.split(".")
            for cut in range(len(parts) - 1, 1, -1):  # deepest DO level above the DA that has q and t
                base = ".".join(parts[:cut])
                q = L.IedModel_getModelNodeByObjectReference(self._model, f"{base}.q".encode())
                if q:
                    ts = L.IedModel_getModelNodeByObjectReference(self._model, f"{base}.t".encode())
                    break
            self._attrs[p.name] = _Attr(node, t, q or None, ts or None)
        if errors:
            raise ModelError("; ".join(errors))

    def _node(self, ref: str) -> int | None:
        return lib().IedModel_getModelNodeByObjectReference(self._model, ref.encode()) or None

    def _sibling_attr(self, do_ref: str, da: str = "stVal") -> "_Attr | None":
        v = self._node(f"{do_ref}.{da}")
        if not v:
            return None
        return _Attr(v, lib().DataAttribute_getType(v), self._node(f"{do_ref}.q"), self._node(f"{do_ref}.t"))

    def _model_value(self, ref: str) -> float | int | bool | None:
        n = self._node(ref)
        v = lib().IedServer_getAttributeValue(self._server, n) if n else None
        return scalar(v) if v else None

    def _resolve_links(self) -> None:
        """Deadbands and instMag of measured values (from the model's db, zeroDb and rangeC, so the
        served configuration is the applied one); units (an SCL model's multiplier decides what the
        served number means); CSWI/OpCnt/Blk of switch positions."""
        factors = model_factors(lambda ref, _fc: self._model_value(ref), self.device.points, self.device.name)
        for p in self.device.points:
            self._attrs[p.name].factor = factors.get(p.name)
            a = self._attrs[p.name]
            parts = p.reference.split(".")
            if a.type in (IEC61850_FLOAT32, IEC61850_FLOAT64) and "mag" in parts:
                i = parts.index("mag")
                vec = parts[i - 1] == "cVal"
                base = ".".join(parts[: i - 1] if vec else parts[:i])
                inst = ".".join(parts[: i - 1] + ["instCVal"] + parts[i:] if vec else parts[:i] + ["instMag"] + parts[i + 1 :])
                a.inst = self._node(inst)
                lo, hi = self._model_value(f"{base}.rangeC.min.f"), self._model_value(f"{base}.rangeC.max.f")
                db, zdb = self._model_value(f"{base}.db"), self._model_value(f"{base}.zeroDb")
                if lo is not None and hi is not None:
                    span = float(hi) - float(lo)
                    a.db = float(db or 0) * 1e-5 * span
                    a.zero_db = float(zdb or 0) * 1e-5 * span
            r = parse_ref(p.reference)
            if r.ln_class in ("XCBR", "XSWI") and r.do == "Pos" and r.rest == ("stVal",):
                ln_ref = f"{r.ld}/{r.ln}"
                a.op_cnt = self._sibling_attr(f"{ln_ref}.OpCnt")
                if a.op_cnt is not None:
                    a.op_cnt.last = self._model_value(f"{ln_ref}.OpCnt.stVal") or 0
                a.blk = (self._node(f"{ln_ref}.BlkOpn.stVal"), self._node(f"{ln_ref}.BlkCls.stVal"))
                a.loc = self._node(f"{ln_ref}.Loc.stVal")
                if r.ln_class == "XCBR":
                    a.follower = self._sibling_attr(_controller_of(r))

    def _blocked(self, p: MmsPoint, raw: object) -> int | None:
        """AddCause when the switch cannot move: Loc → Blocked-by-switching-hierarchy, BlkOpn/BlkCls →
        Blocked-by-process (IEC 61850-7-2 Ed. 2, AddCause: a blocking at process level)."""
        a = self._attrs[p.name]
        if a.loc and self._bool(a.loc):
            return 2
        opening = raw in (1, False)
        blk = a.blk[0] if opening else a.blk[1]
        if blk and self._bool(blk):
            return ADD_CAUSE_BLOCKED_BY_PROCESS
        return None

    def _bool(self, node: int) -> bool:
        v = lib().IedServer_getAttributeValue(self._server, node)
        return bool(v and scalar(v))

    # ------------------------------------------------------------ controls

    def _install_controls(self) -> None:
        L = lib()
        cb = ControlHandler(self._control)
        check = CheckHandler(self._check)
        self._handlers += [cb, check]
        seen: set[str] = set()
        for p in self.device.points:
            r = parse_ref(p.reference)
            if r.rest[:1] != ("stVal",) or r.do_ref in seen:
                continue
            do = L.IedModel_getModelNodeByObjectReference(self._model, r.do_ref.encode())
            if not do or not L.ModelNode_getChild(do, b"Oper"):
                continue
            seen.add(r.do_ref)
            self._ctl_points.append(p)
            L.IedServer_setControlHandler(self._server, do, cb, C.c_void_p(len(self._ctl_points)))
            L.IedServer_setPerformCheckHandler(self._server, do, check, C.c_void_p(len(self._ctl_points)))
            if r.ln_class == "XCBR" and r.do == "Pos":  # the bay controller operates the same breaker
                cswi = self._node(_controller_of(r))
                if cswi and L.ModelNode_getChild(cswi, b"Oper"):
                    self._ctl_points.append(p)
                    L.IedServer_setControlHandler(self._server, cswi, cb, C.c_void_p(len(self._ctl_points)))
                    L.IedServer_setPerformCheckHandler(self._server, cswi, check, C.c_void_p(len(self._ctl_points)))
        local = ControlHandler(self._local_control)
        self._handlers.append(local)
        for a in self._attrs.values():
            for node in a.blk:
                do = wlib().ModelNode_getParent(node) if node else None
                if do and L.ModelNode_getChild(do, b"Oper"):
                    self._local.append(_Attr(node, IEC61850_BOOLEAN, L.ModelNode_getChild(do, b"q"), L.ModelNode_getChild(do, b"t")))
                    L.IedServer_setControlHandler(self._server, do, local, C.c_void_p(len(self._local)))

    def _check(self, action: int, param: int, ctl_val: int, test: bool, interlock: bool) -> int:
        """libiec61850's thread, before a select or operate is accepted: a blocked switch is refused here
        (negative response with AddCause), so direct-normal control can refuse too."""
        try:
            p = self._ctl_points[(param or 0) - 1]
            raw = scalar(ctl_val) if ctl_val else None
            if isinstance(raw, bool) and self._attrs[p.name].type == IEC61850_CODEDENUM:
                raw = 2 if raw else 1
            cause = self._blocked(p, raw) if raw is not None else None
            if cause is None:
                return CONTROL_ACCEPTED
            self.counters["controls_refused"] += 1
            lib().ControlAction_setAddCause(action, cause)
            return CONTROL_OBJECT_ACCESS_DENIED
        except Exception:  # an exception must not unwind into C
            log.exception("IED %s: control check failed", self.device.name)
            return CONTROL_OBJECT_ACCESS_DENIED

    def _local_control(self, action: int, param: int, ctl_val: int, test: bool) -> int:
        """libiec61850's thread: BlkOpn/BlkCls are the IED's own state, set at once."""
        try:
            a = self._local[(param or 0) - 1]
            self._write(a, bool(scalar(ctl_val)), 0, time.time())
            return CONTROL_RESULT_OK
        except Exception:  # an exception must not unwind into C
            log.exception("IED %s: block control failed", self.device.name)
            return CONTROL_RESULT_FAILED

    def _control(self, action: int, param: int, ctl_val: int, test: bool) -> int:
        """libiec61850's thread: never block here; the verdict comes from asyncio."""
        try:
            p = self._ctl_points[(param or 0) - 1]
            raw = scalar(ctl_val)
            if isinstance(raw, bool) and self._attrs[p.name].type == IEC61850_CODEDENUM:
                raw = 2 if raw else 1  # DPC ctlVal true = on/closed
            value = to_engineering(p, raw)
            with self._lock:
                st = self._pending.get(param)
                if st is None:
                    cause = self.faults.refuse_add_cause
                    if cause is None:
                        cause = self._blocked(p, raw)
                    if cause is not None:  # fault: refused before reaching the process
                        self.counters["controls_refused"] += 1
                        lib().ControlAction_setAddCause(action, cause)
                        return CONTROL_RESULT_FAILED
                    return self._begin(param, p, value, action)
            if st["done"]:
                with self._lock:
                    self._pending.pop(param, None)
                if st["ok"]:
                    return CONTROL_RESULT_OK
                lib().ControlAction_setAddCause(action, ADD_CAUSE_BLOCKED_BY_PROCESS)
                return CONTROL_RESULT_FAILED
            if time.monotonic() - st["since"] > CONTROL_VERDICT_TIMEOUT:
                with self._lock:
                    self._pending.pop(param, None)
                lib().ControlAction_setAddCause(action, ADD_CAUSE_BLOCKED_BY_PROCESS)
                return CONTROL_RESULT_FAILED
            return CONTROL_RESULT_WAITING
        except Exception:  # an exception must not unwind into C
            log.exception("IED %s: control handler failed", self.device.name)
            return CONTROL_RESULT_FAILED

    def _begin(self, param: int, p: MmsPoint, value: int | float, action: int) -> int:
        self.controls += 1
        if self.on_control is None:  # stand-alone: the breaker follows the command at once
            self._write(self._attrs[p.name], to_raw(p, value), 0, time.time())
            return CONTROL_RESULT_OK
        st = {"done": False, "ok": False, "since": time.monotonic()}
        self._pending[param] = st

        def decide() -> None:
            try:
                st["ok"] = bool(self.on_control(p.name, value))  # type: ignore[misc]
            except Exception:
                log.exception("IED %s: on_control(%s) failed", self.device.name, p.name)
            st["done"] = True

        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(decide)
        else:
            decide()
        return CONTROL_RESULT_WAITING


def _controller_of(r) -> str:
    """The CSWI.Pos that controls an XCBR: same prefix and instance (Q0XCBR1 → Q0CSWI1.Pos)."""
    prefix, _, inst = r.ln.rpartition("XCBR")
    return f"{r.ld}/{prefix}CSWI{inst}.Pos"


def _by_factor(value: float | int | bool, factor: float) -> float | int | bool:
    if isinstance(value, bool) or factor == 1.0:
        return value
    return value / factor


def to_raw(p: MmsPoint, value: float | int | bool) -> float | int | bool:
    """Engineering value (what the firmware computes) → the DA's value, inverse of the gateway's mapping."""
    if p.measurement.kind == "Discrete":
        code = int(value)
        if p.value_map:
            inverse = {v: k for k, v in p.value_map.items()}
            return inverse.get(code, code)
        return code
    if isinstance(value, bool) or p.scale == 0:
        return value
    return (value - p.offset) / p.scale


def to_engineering(p: MmsPoint, raw: float | int | bool) -> float | int:
    if p.measurement.kind == "Discrete":
        code = int(raw)
        return p.value_map.get(code, code) if p.value_map else code
    return raw * p.scale + p.offset


def _load_model_file(path: str) -> int:
    """A libiec61850 config-file model (.cfg, made from SCL by genconfig.jar)."""
    if not os.path.isfile(path):
        raise ModelError(f"iec61850.scl: {path} does not exist; give the path of a libiec61850 .cfg model")
    L = lib()
    model = L.ConfigFileParser_createModelFromConfigFileEx(path.encode())
    if model and L.IedModel_getLogicalDeviceCount(model) == 0:
        L.IedModel_destroy(model)
        model = None
    if not model:
        raise ModelError(f"iec61850.scl: {path} is not a valid libiec61850 config-file model (parse failed)")
    return model
