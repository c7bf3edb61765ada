"""The gateway's IEC 60870-5-104 client (controlling station) on c104's client.

c104 runs the APCI on its own thread (STARTDT, TESTFR, t1–t3, k/w); monitoring ASDUs arrive on
that thread and are handed to the event loop with ``call_soon_threadsafe``. On every connect:
general interrogation (C_IC_NA_1), counter interrogation (C_CI_NA_1) when the device has
integrated totals, clock sync (C_CS_NA_1); the GI repeats every ``gi_interval``. Source time is
the ASDU's CP56Time2a (else the receive time); quality comes from the quality descriptor
(adapter.quality_to_q). Comms state, backoff and the INVALID marking on loss come from
:class:`DeviceSession`. Commands are decided from the confirmations themselves (adapter.Confirmations).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import c104

from gateway.pipeline import Backoff, Emit, Reading
from gateway.protocols.iec104.ackwatch import AckWatch
from gateway.protocols.iec104.adapter import (
    REFUSAL_COTS,
    TYPE_ID,
    Confirmations,
    MalformedApdu,
    apply_parameters,
    c104_type,
    command_type,
    describe_refusal,
    make_command,
    make_step,
    parse_apdu,
    point_callback,
    qds_of,
    quality_to_q,
    raw_callback,
    state_callback,
    to_engineering,
    to_epoch,
    unexpected_callback,
)
from gateway.protocols.iec104.config import Iec104Device, Iec104Point
from gateway.site.quality import VALIDITY_MASK, Q, with_validity
from gateway.southbound.contract import CommandOutcome
from gateway.southbound.session import DeviceSession, DriverError

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Iec104CommandResult(CommandOutcome):
    """Outcome of an operate; ``command_type`` is the ASDU sent, ``cot`` the deciding confirmation's cause
    (7 activation confirmation, 44–47 unknown type/COT/CA/IOA), ``terminated`` whether ACT_TERM (COT 10) came."""

    command_type: str | None = None
    cot: int | None = None
    negative: bool = False
    terminated: bool = False
    error: str | None = None


class Iec104Source(DeviceSession):
    protocol = "iec104"

    def __init__(self, device: Iec104Device, backoff: Backoff | None = None) -> None:
        super().__init__(device, backoff)
        self.cfg: Iec104Device = device
        self.points = {p.name: p for p in device.points}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"iec104-{device.name}")
        self._client: Any = None
        self._con: Any = None
        self._cmd: dict[str, Any] = {}
        self._emit: Emit | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._dropped = False  # set by c104's state callback: the link went down (c104 reconnects behind our back)
        self._confirm = Confirmations()
        self._sent_commands: list[tuple[int, int, bool]] = []  # (type id, IOA, S/E) of activations c104 sent
        self._acks = AckWatch()  # t1 on our I-frames (c104's client does not enforce it)
        self.counters: dict[str, int] = {
            "asdus": 0, "values": 0, "spontaneous": 0, "interrogated": 0, "periodic": 0, "dropped": 0,
            "general_interrogations": 0, "gi_failed": 0, "counter_interrogations": 0, "clock_syncs": 0,
            "commands": 0, "callback_errors": 0, "startdt_retries": 0, "executes_resent": 0,
            "startdt_unconfirmed": 0, "t1_expired": 0, "time_tags_rejected": 0, "failovers": 0,
        }
        self._latest_ts: dict[str, float] = {}  # point → newest believed source time
        self._time_bad: set[str] = set()  # points whose time tags are being rejected (warn once per onset)
        self._endpoints = [(device.host, device.port)]
        if device.iec104.backup is not None:
            self._endpoints.append((device.iec104.backup.host, device.iec104.backup.port))
        self._endpoint = 0
        self._attempts = 0
        self.malformed: dict[str, int] = {}
        self.unexpected: dict[str, int] = {}

    # ------------------------------------------------------------ DeviceSession

    async def _call(self, fn, *args, timeout: float | None = None):
        fut = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        return await asyncio.wait_for(fut, timeout or self.cfg.timeout * 4)

    @property
    def endpoint(self) -> tuple[str, int]:
        """host, port of the connection in use (the backup's after a failover)."""
        return self._endpoints[self._endpoint]

    async def connect(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        start = loop.time()
        self._emit = None
        self._closed = False
        self._dropped = False
        if self._attempts and len(self._endpoints) > 1:  # every new attempt after a failure or a drop: the other one
            self._endpoint = 1 - self._endpoint
            self.counters["failovers"] += 1
            log.warning("%s: failing over to %s:%s", self.device, *self.endpoint)
        self._attempts += 1
        await self._call(self._open, timeout=self.cfg.timeout * 2 + 5)
        # the session allows connect() timeout * 2; STARTDT must be confirmed within t1 (§9.6) and before that
        wait = min(self.cfg.iec104.t1, self.cfg.timeout * 1.8)
        deadline = start + wait
        muted_since: float | None = None
        muted = False  # the TCP connection was up without STARTDT con at some point of this attempt
        while not (self._con is not None and self._con.is_connected and not self._con.is_muted):  # STARTDT confirmed
            now = loop.time()
            if now > deadline:
                if muted:
                    self.counters["startdt_unconfirmed"] += 1
                    why = "t1" if wait == self.cfg.iec104.t1 else "1.8 × the device timeout, shorter than t1"
                    raise DriverError(f"the RTU at {self.endpoint[0]}:{self.endpoint[1]} accepted the connection "
                                      f"but never confirmed STARTDT within {wait:g} s ({why})")
                raise TimeoutError
            if self._con is not None and self._con.is_connected:
                muted_since = muted_since if muted_since is not None else now
                muted = True
                if now - muted_since > 0.3:
                    # c104 gap: with Init.NONE the STARTDT is sometimes never sent; Connection.unmute() can crash
                    # the process while c104 reconnects, so start over with a fresh client instead
                    self.counters["startdt_retries"] += 1
                    await self._call(self._close_client)
                    await self._call(self._open, timeout=self.cfg.timeout * 2 + 5)
                    muted_since = None
            await asyncio.sleep(0.02)

    def _open(self) -> None:
        try:
            self._build()
        except ValueError as e:  # c104 rejected a parameter: end this attempt with the reason, never the task
            raise DriverError(f"c104 refused the connection setup: {e}") from None

    def _build(self) -> None:
        o = self.cfg.iec104
        client = c104.Client(tick_rate_ms=50, command_timeout_ms=int(self.cfg.timeout * 1000))
        host, port = self.endpoint
        con = client.add_connection(ip=host, port=port, init=c104.Init.NONE)
        if con is None:
            raise DriverError(f"c104 refused a connection to {host}:{port}")
        apply_parameters(con.protocol_parameters, o)
        station = con.add_station(common_address=o.common_address)
        for p in self.cfg.points:
            mp = station.add_point(io_address=p.ioa, type=c104_type(p.type))
            mp.on_receive(callable=point_callback(self._monitor_handler(p), self._callback_error, c104.ResponseState.NONE))
            if p.command is not None and p.command.enabled:
                self._cmd[p.name] = station.add_point(io_address=p.command_address(), type=c104_type(command_type(p)))
        con.on_receive_raw(callable=raw_callback(self._on_raw, self._callback_error, server=False))
        con.on_send_raw(callable=raw_callback(self._on_sent, self._callback_error, server=False))
        con.on_unexpected_message(callable=unexpected_callback(self._on_unexpected, server=False))
        con.on_state_change(callable=state_callback(self._on_state))
        self._client, self._con = client, con
        self._acks.reset()
        client.start()

    async def close(self) -> None:
        self._closed = True
        try:
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(self._pool, self._close_client))
        except Exception as e:  # must not raise
            log.debug("%s: close: %s", self.device, e)

    def _close_client(self) -> None:
        client, self._client, self._con = self._client, None, None
        self._cmd = {}
        if client is not None:
            client.stop()

    async def serve(self, emit: Emit) -> None:
        self._emit = emit
        o = self.cfg.iec104
        loop = asyncio.get_running_loop()
        await self._interrogate()
        next_gi = loop.time() + o.gi_interval if o.gi_interval else None
        while True:
            con = self._con
            if con is None or self._dropped or not con.is_connected or con.is_muted:
                raise DriverError("IEC 104 connection closed")
            if (late := self._acks.overdue(o.t1)) is not None:
                self.counters["t1_expired"] += 1
                raise DriverError(f"the RTU did not acknowledge I-frame N(S)={late[0]} within t1 ({o.t1:g} s)")
            self.state.last_ok = time.time()
            if next_gi is not None and loop.time() >= next_gi:
                await self._interrogate()
                next_gi = loop.time() + (o.gi_interval or 0)
            await asyncio.sleep(0.2)

    async def _interrogate(self) -> None:
        """GI, then counter interrogation (if there are integrated totals), then clock sync."""
        ok = await self._call(self._gi, timeout=self.cfg.timeout * 3)
        self.counters["general_interrogations"] += 1
        if not ok:
            self.counters["gi_failed"] += 1
            raise DriverError("general interrogation not confirmed by the RTU")
        self.state.polls += 1
        if any(p.type.startswith("M_IT") for p in self.cfg.points):
            if await self._call(self._ci, timeout=self.cfg.timeout * 3):
                self.counters["counter_interrogations"] += 1
        if self.cfg.iec104.clock_sync and await self._call(self._cs, timeout=self.cfg.timeout * 3):
            self.counters["clock_syncs"] += 1

    def _gi(self) -> bool:
        con = self._con
        return bool(con and con.interrogation(common_address=self.cfg.iec104.common_address, cause=c104.Cot.ACTIVATION,
                                              qualifier=c104.Qoi.STATION, wait_for_response=True))

    def _ci(self) -> bool:
        con = self._con
        return bool(con and con.counter_interrogation(common_address=self.cfg.iec104.common_address, wait_for_response=True))

    def _cs(self) -> bool:
        con = self._con
        return bool(con and con.clock_sync(common_address=self.cfg.iec104.common_address, wait_for_response=True))

    # ------------------------------------------------------------ c104's thread

    def _monitor_handler(self, p: Iec104Point):
        key = f"{self.device}/{p.name}"
        address = f"ioa:{p.ioa}"

        def handle(point: Any, previous_info: Any, message: Any) -> Any:
            now = time.time()
            cot = message.cot
            ts = to_epoch(point.recorded_at) if p.type.endswith("TB_1") or p.type in ("M_ME_TE_1", "M_ME_TF_1") else None
            q = quality_to_q(qds_of(point.quality))
            if ts is not None:
                ts, q = self._check_time(p.name, ts, now, q)
            r = Reading(key, to_engineering(p, point.value), q, ts or now, address, event=cot == c104.Cot.SPONTANEOUS)
            if cot == c104.Cot.SPONTANEOUS:
                self.counters["spontaneous"] += 1
            elif cot == c104.Cot.PERIODIC:
                self.counters["periodic"] += 1
            else:
                self.counters["interrogated"] += 1
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._deliver, r)
            return c104.ResponseState.NONE

        return handle

    def _check_time(self, name: str, ts: float, now: float, q: int) -> tuple[float, int]:
        """A time tag in the future, or one that jumped back behind the point's newest, is not believed:
        the receive time instead, QUESTIONABLE + inconsistent, counted and warned about once per episode."""
        skew = self.cfg.iec104.max_time_skew
        newest = self._latest_ts.get(name)
        if ts <= now + skew and (newest is None or ts >= newest - skew):
            self._latest_ts[name] = max(ts, newest or ts)
            self._time_bad.discard(name)
            return ts, q
        self.counters["time_tags_rejected"] += 1
        if name not in self._time_bad:
            self._time_bad.add(name)
            log.warning("%s/%s: the RTU's time tag %s is %+.0f s off the gateway's clock%s; published with the receive "
                        "time, QUESTIONABLE (check the RTU's clock and the clock sync)", self.device, name,
                        dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds"), ts - now,
                        "" if ts > now + skew else " and behind the point's previous one")
        q |= Q.INCONSISTENT
        return now, q if q & VALIDITY_MASK == Q.INVALID else with_validity(q, Q.QUESTIONABLE)

    def _deliver(self, r: Reading) -> None:
        emit = self._emit
        if emit is None or self._closed:  # between associations: counted, not silently lost
            self.counters["dropped"] += 1
            return
        self.counters["values"] += 1
        self.state.last_ok = time.time()
        emit(r)

    def _on_raw(self, data: bytes) -> None:
        self._acks.received(data)
        try:
            a = parse_apdu(data)
        except MalformedApdu as e:
            self.malformed[e.reason] = self.malformed.get(e.reason, 0) + 1
            log.warning("%s: malformed APDU from the RTU (%s)", self.device, e)
            return
        if a.fmt == "I":
            self.counters["asdus"] += 1
            self._confirm.feed(a)

    def _on_sent(self, data: bytes) -> None:
        self._acks.sent(data)
        try:
            a = parse_apdu(data)
        except MalformedApdu:
            return
        if a.fmt == "I" and a.cot == 6:
            self._sent_commands.append((a.type_id, a.ioa, a.select))

    def _on_unexpected(self, cause: str, type_id: int) -> None:
        self.unexpected[cause] = self.unexpected.get(cause, 0) + 1

    def _on_state(self, state: str) -> None:
        log.debug("%s: connection state %s", self.device, state)
        if state.startswith("CLOSED") and self.state.connected:
            self._dropped = True  # even if c104 reconnects before serve() looks: values may have been missed

    def _callback_error(self, e: BaseException) -> None:
        self.counters["callback_errors"] += 1
        log.error("%s: IEC 104 value could not be decoded: %s", self.device, e)

    def status_counters(self) -> dict[str, Any]:
        return {**self.counters, "on_backup": self._endpoint, "malformed": dict(self.malformed),
                "unexpected": dict(self.unexpected)}

    # ------------------------------------------------------------ commands

    async def operate(self, point_name: str, value: float | int | bool, mode: Literal["direct", "sbo"] = "direct") -> Iec104CommandResult:
        """Send the point's command (C_SC/C_DC/C_RC/C_SE); ``sbo`` selects first (S/E=1, then S/E=0)."""
        p = self.points.get(point_name)

        def result(outcome: str, error: str, **kw: Any) -> Iec104CommandResult:
            return Iec104CommandResult(ok=outcome == "accepted", point=point_name, value=value, mode=mode,
                                       outcome=outcome, reason=error, error=error or None, **kw)  # type: ignore[arg-type]

        if p is None:
            return result("refused", f"no point {point_name!r} on {self.device}")
        if p.command is None or not p.command.enabled:
            return result("refused", f"point {point_name!r} is not controllable (no command: {{enabled: true}} in the site file)")
        if self._con is None or not self.connected:
            return result("not_connected", "RTU not connected")
        try:
            info = self._command_info(p, value)
        except ValueError as e:
            return result("refused", str(e))
        self.counters["commands"] += 1
        try:
            return await self._call(self._operate, p, info, value, mode, timeout=self.cfg.timeout * 4)
        except (TimeoutError, DriverError, OSError) as e:
            return result("timed_out" if isinstance(e, TimeoutError) else "not_connected", str(e) or "no confirmation in time")

    def _select_confirmed_without_execute(self, pending: Any, tid: int, ioa: int) -> bool:
        """True when the select was confirmed and, within a grace period, neither an execute left nor
        anything answered one (c104's send hook can lag: resending early would operate twice)."""
        deadline = time.monotonic() + min(1.0, self.cfg.timeout)
        while True:
            with pending.cond:
                confirmed = any(a.cot == 7 and a.select and not a.negative for a in pending.events)
                answered = any(a.negative or a.cot in REFUSAL_COTS or (a.cot == 7 and not a.select) for a in pending.events)
            executed = any(t == tid and i == ioa and not sel for t, i, sel in list(self._sent_commands))
            if not confirmed or answered or executed:
                return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.05)

    def _command_info(self, p: Iec104Point, value: float | int | bool) -> Any:
        if command_type(p) != "C_RC_NA_1":
            return make_command(p, value)
        last = self.last.get(f"{self.device}/{p.name}")
        if last is None or last.value is None:
            raise ValueError(f"{p.name}: the current step position is unknown, so no regulating step can be chosen")
        if float(value) == float(last.value):
            raise ValueError(f"{p.name} is already at {value}")
        return make_step(float(value) > float(last.value))

    def _operate(self, p: Iec104Point, info: Any, value: Any, mode: str) -> Iec104CommandResult:
        cp = self._cmd.get(p.name)
        if cp is None or self._con is None:
            raise DriverError("not connected")
        ctype = command_type(p)
        sbo = mode == "sbo"
        cp.command_mode = c104.CommandMode.SELECT_AND_EXECUTE if sbo else c104.CommandMode.DIRECT
        cp.info = info
        tid, ioa = TYPE_ID[ctype], p.command_address()
        pending = self._confirm.expect(tid, ioa)
        self._sent_commands.clear()
        try:
            cp.transmit(cause=c104.Cot.ACTIVATION)  # its True/False is not trusted (adapter docstring)
            if sbo and self._select_confirmed_without_execute(pending, tid, ioa):
                # c104 gap: after a confirmed select its client sometimes never sends the execute; a DIRECT
                # transmit of the same command is exactly that execute (S/E=0)
                self.counters["executes_resent"] += 1
                cp.command_mode = c104.CommandMode.DIRECT
                cp.transmit(cause=c104.Cot.ACTIVATION)
            # ACT_TERM is optional for commands (c104's server sends it after select-before-execute only)
            verdict, deciding, terminated = Confirmations.wait(pending, sbo, self.cfg.timeout, min(1.0, self.cfg.timeout))
        finally:
            self._confirm.done(pending)
        common = dict(ok=verdict == "accepted", point=p.name, value=value, mode=mode, command_type=ctype,
                      cot=deciding.cot if deciding else None, negative=bool(deciding and deciding.negative),
                      terminated=terminated)
        if verdict == "accepted":
            return Iec104CommandResult(outcome="accepted", **common)  # type: ignore[arg-type]
        if verdict == "negative":
            why = describe_refusal(deciding)
            return Iec104CommandResult(outcome="device_error", reason=why, error=why, **common)  # type: ignore[arg-type]
        return Iec104CommandResult(outcome="timed_out", reason="no activation confirmation from the RTU",
                                   error="no activation confirmation from the RTU", **common)  # type: ignore[arg-type]
