"""Emulated DNP3 outstation (IEEE 1815-2012 over TCP) fed by the simulated firmware.

Uses dnp3py for framing and CRCs (via ``gateway.protocols.dnp3.link``) and fills its
outstation gaps here: confirm-before-clear event buffers with per-class limits and IIN2.3,
unsolicited reporting (FC 20/21 per class, confirm and retry), timestamped event
variations chosen per point, select-before-operate and direct operate applied to the
simulated equipment, and a count of every malformed frame or request. Comms faults (IIN1.6 DEVICE_TROUBLE,
ignored confirms) come from ``self.faults`` (devices/dnp3/faults.py).
One master at a time (devices/netguard.py): a second connection is refused while the current
master was heard within ``connections.idle_timeout`` (``dnp3.second_master: refuse``, as real
outstations do), or takes over (``replace``); a silent master is closed after the idle timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from devices.dnp3.events import EventBuffers
from devices.dnp3.faults import Dnp3Faults
from devices.dnp3.responses import FragmentPacker
from devices.netguard import ConnGuard, GuardLimits, PeerWarnings, quiet_accept_errors
from devices.sharedlisten import Attachment, OwnListener, SharedListeners, serve_accepted
from gateway.protocols.dnp3 import objects as o
from gateway.protocols.dnp3.config import Dnp3Device, Dnp3Point
from gateway.protocols.dnp3.flags import from_quality
from gateway.protocols.dnp3.link import REQUEST_LINK_STATUS, LinkChannel, LinkStats
from gateway.protocols.dnp3.points import PointTable, to_engineering, to_raw

log = logging.getLogger(__name__)

OnCommand = Callable[[str, int | float], bool]
#: accept queue of an outstation's own socket (asyncio.start_server's default: one master at a time)
BACKLOG = 100
_CONTROL_FCS = (o.SELECT, o.OPERATE, o.DIRECT_OPERATE, o.DIRECT_OPERATE_NR)


class Dnp3Outstation:
    """``listeners``: the emulator's shared ports (devices/sharedlisten.py): an outstation on a 127.x address
    of a shared port takes its master connections from the port's one socket instead of opening its own."""

    def __init__(
        self,
        device: Dnp3Device,
        on_command: OnCommand | None = None,
        *,
        max_fragment: int = 2048,
        confirm_timeout: float = 2.0,
        unsol_confirm_timeout: float = 1.0,
        select_timeout: float = 5.0,
        listeners: SharedListeners | None = None,
    ) -> None:
        self.cfg = device
        self.on_command = on_command
        self.table = PointTable(device)
        self.max_fragment = max_fragment
        self.confirm_timeout = confirm_timeout
        self.unsol_confirm_timeout = unsol_confirm_timeout
        self.select_timeout = select_timeout
        lim = device.dnp3.event_buffer
        self.events = EventBuffers({1: lim.get("class1", 500), 2: lim.get("class2", 500), 3: lim.get("class3", 500)})
        # static database: (kind, index) → last value, flags RESTART until the firmware's first update
        self.static: dict[tuple[str, int], o.Obj] = {
            (p.group, p.index): o.Obj(p.index, False if p.group in ("binary", "binary_output") else 0, o.RESTART)
            for p in device.points
        }
        self.restart_iin = True
        self.need_time = True
        self.time_offset_ms = 0
        self.faults = Dnp3Faults()  # replaced as a whole by the fault engine (devices/scenario/inject.py)
        self.port = device.port
        self.link_stats = LinkStats()
        self.counters = {
            "malformed_requests": 0, "unknown_function": 0, "unsol_sent": 0, "unsol_retried": 0,
            "responses": 0, "commands": 0, "connections": 0, "confirms_ignored": 0, "keepalive_probes": 0,
        }
        self._listeners = listeners
        self._server: OwnListener | Attachment | None = None
        self._stopped = False
        self._session: _Session | None = None
        self._wake = asyncio.Event()
        c = device.connections
        take_over_after = 0.0 if device.dnp3.second_master == "replace" else (float(c.idle_timeout) or float("inf"))
        self.guard = ConnGuard(f"{device.name}: DNP3 outstation", GuardLimits(1, float(c.idle_timeout), take_over_after))
        self.warnings = PeerWarnings(log)
        for p in device.points:
            if p.variation is not None and (o.EVENT_GROUP[p.group], p.variation) not in o.LAYOUT:
                ok = sorted(v for (g, v) in o.LAYOUT if g == o.EVENT_GROUP[p.group])
                raise ValueError(
                    f"{device.name}: point {p.name!r} asks for event variation {p.variation} of group "
                    f"{o.EVENT_GROUP[p.group]}; use one of {ok}"
                )

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = False
        take = lambda sock: serve_accepted(loop, sock, self._stream)  # noqa: E731
        shared = None if self._listeners is None else self._listeners.attach(self.cfg.host, self.cfg.port, take, self.cfg.name)
        self._server = shared or await OwnListener.open(loop, self.cfg.host, self.cfg.port, take, BACKLOG)
        self.port = self._server.sockets[0].getsockname()[1]
        quiet_accept_errors()
        self.guard.start_sweeps(asyncio.get_running_loop())
        log.info("%s: DNP3 outstation %d listening on %s:%d", self.cfg.name, self.cfg.dnp3.outstation_address, self.cfg.host, self.port)

    async def stop(self) -> None:
        self._stopped = True
        self.guard.stop_sweeps()
        if self._server:
            self._server.close()
        if self._session:
            await self._session.close()
            self._session = None
        if self._server:
            try:
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            except TimeoutError:
                pass
            self._server = None

    def _stream(self) -> asyncio.StreamReaderProtocol:
        """A connection from a shared port, as ``asyncio.start_server`` makes one."""
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(), self._accept)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopped:  # stop() ran while the connection was being set up
            writer.transport.abort()
            return
        s = _Session(self, reader, writer)
        old = self._session
        if not self.guard.admit(s):  # the current master stays; the newcomer is closed at once
            writer.transport.abort()
            if old is not None:
                old.probe()  # a half-open association (master host gone) then ends by RST, so a retry gets in
            return
        if old is not None:
            log.info("%s: new master connection replaces the current one", self.cfg.name)
            await old.close()
        self.counters["connections"] += 1
        self._session = s
        try:
            await s.run()
        finally:
            self.guard.gone(s)
            if self._session is s:
                self._session = None

    # ---------------------------------------------------------------- firmware side
    def update(self, point_name: str, value: Any, quality: int = 0, timestamp: float | None = None) -> None:
        """New value from the firmware; queues an event in the point's class when it changed."""
        p = self.table.point(point_name)
        ts = time.time() if timestamp is None else timestamp
        try:
            raw = to_raw(p, value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.cfg.name}: point {point_name!r} ({p.group}) needs a number, got {value!r}") from None
        flags = from_quality(p.group, quality)
        key = (p.group, p.index)
        prev = self.static[key]
        obj = o.Obj(p.index, raw, flags, int(round(ts * 1000)))
        self.static[key] = obj
        if p.event_class and _changed(p, prev, obj):
            var = p.variation or o.EVENT_VARIATION[p.group]
            self.events.add(p.group, o.EVENT_GROUP[p.group], var, p.event_class, obj)
            self._wake.set()

    def value(self, point_name: str) -> Any:
        """Current engineering value of a point (what a master reading it would see)."""
        p = self.table.point(point_name)
        return to_engineering(p, self.static[(p.group, p.index)].value)

    @property
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counters)
        for c, st in self.events.stats.items():
            out[f"class{c}_queued"] = st.queued
            out[f"class{c}_confirmed"] = st.confirmed
            out[f"class{c}_overflowed"] = st.overflowed
        out["events_buffered"] = self.events.count()
        out["malformed_frames"] = self.link_stats.malformed
        out["link"] = self.link_stats.as_dict()
        out["guard"] = self.guard.counters.as_dict()
        return out

    def iin(self) -> int:
        v = 0
        if self.restart_iin:
            v |= o.IIN_DEVICE_RESTART
        if self.need_time:
            v |= o.IIN_NEED_TIME
        if self.faults.device_trouble:
            v |= o.IIN_DEVICE_TROUBLE
        for c, bit in o.IIN_CLASS_BITS.items():
            if self.events.has_pending(c):
                v |= bit
        if self.events.overflow:
            v |= o.IIN_EVENT_BUFFER_OVERFLOW
        return v

    # ---------------------------------------------------------------- commands
    def apply_command(self, point: Dnp3Point, value: int | float | bool) -> int:
        """Hand one operate to the emulator (or apply it to our own value); returns a command status."""
        self.counters["commands"] += 1
        if self.on_command is None:
            self.update(point.name, value, 0)
            return o.CommandStatus.SUCCESS
        try:
            ok = self.on_command(point.name, value)
        except Exception as e:  # the emulator's fault must not take the outstation down
            log.error("%s: on_command(%s, %r) failed: %s", self.cfg.name, point.name, value, e)
            return o.CommandStatus.HARDWARE_ERROR
        return o.CommandStatus.SUCCESS if ok else o.CommandStatus.BLOCKED


def _changed(p: Dnp3Point, prev: o.Obj, new: o.Obj) -> bool:
    if prev.flags != new.flags:
        return True
    if p.group in ("analog", "analog_output", "counter"):
        return abs(float(new.value or 0) - float(prev.value or 0)) * abs(p.scale) > p.deadband or (
            p.deadband == 0 and new.value != prev.value
        )
    return new.value != prev.value


class _Session:
    """One master connection: request/response, confirms, unsolicited task."""

    def __init__(self, os_: Dnp3Outstation, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.os = os_
        d = os_.cfg.dnp3
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.opened = self.last_active = time.monotonic()
        host = self.peer.rsplit(":", 1)[0]
        self.warn = lambda kind, msg, *args: os_.warnings.warn(host, kind, msg, *args)
        self.ch = LinkChannel(
            reader, writer, d.outstation_address, d.master_address, is_master=False, stats=os_.link_stats, warn=self.warn
        )
        self.sol_queue: list[bytes] = []  # fragments still to send after the one awaiting confirm
        self.sol_wait: int | None = None  # seq of the solicited fragment awaiting confirm
        self.sol_timer: asyncio.TimerHandle | None = None
        self.unsol_enabled: set[int] = set()
        self.unsol_seq = 0
        self.unsol_pending: bytes | None = None
        self.unsol_deadline = 0.0
        self.null_unsol_done = not d.unsolicited
        self.last_request: bytes | None = None
        self.last_response: list[bytes] = []
        self.select: tuple[int, bytes, float] | None = None
        self._tasks: list[asyncio.Task] = []
        self._run_task: asyncio.Task | None = None
        self._closed = False

    async def run(self) -> None:
        peer = self.ch.writer.get_extra_info("peername")
        log.info("%s: master connected from %s", self.os.cfg.name, peer)
        self._run_task = asyncio.current_task()
        self.os._wake.set()  # the null unsolicited response goes out first
        self._tasks.append(asyncio.create_task(self._unsol_loop()))
        try:
            while True:
                frag = await self.ch.recv()
                self.last_active = time.monotonic()
                try:
                    self.on_fragment(frag)
                except Exception as e:  # a request we cannot handle must not kill the association
                    self.os.counters["malformed_requests"] += 1
                    self.warn("request", "%s: request %s dropped: %s", self.os.cfg.name, frag[:8].hex(), e)
                await self.ch.writer.drain()
        except (EOFError, ConnectionError, OSError) as e:
            log.info("%s: master connection ended (%s)", self.os.cfg.name, e or type(e).__name__)
        except asyncio.CancelledError:
            pass  # stop() or a newer master connection closed us
        finally:
            await self.close()

    def probe(self) -> None:
        """DNP3 keep-alive (REQUEST_LINK_STATUS) to the current master; a live one answers LINK_STATUS."""
        if not self._closed and not self.ch.writer.is_closing():
            self.os.counters["keepalive_probes"] += 1
            self.ch.writer.write(self.ch._frame(REQUEST_LINK_STATUS, True))

    def close_by_guard(self, reason: str) -> None:
        log.info("%s: closing master connection %s (%s)", self.os.cfg.name, self.peer, reason)
        asyncio.get_running_loop().create_task(self.close())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        if self._run_task is not None and self._run_task is not asyncio.current_task():
            self._run_task.cancel()
        if self.sol_timer:
            self.sol_timer.cancel()
        self.os.events.release()  # nothing confirmed on this connection stays selected
        await self.ch.close()

    # ---------------------------------------------------------------- requests
    def on_fragment(self, frag: bytes) -> None:
        if len(frag) < 2:
            self.os.counters["malformed_requests"] += 1
            self.warn("short", "%s: %d-octet fragment is too short for a request header; dropped", self.os.cfg.name, len(frag))
            return
        ac, fc = frag[0], frag[1]
        seq = ac & 0x0F
        if fc == o.CONFIRM:
            self.on_confirm(ac)
            return
        if fc >= o.RESPONSE:
            self.os.counters["malformed_requests"] += 1
            self.warn("response", "%s: response function %d sent to an outstation; dropped", self.os.cfg.name, fc)
            return
        if self.sol_wait is not None:  # a new request abandons the unconfirmed response
            self._abandon_solicited()
        if frag == self.last_request and fc != o.READ:
            for f in self.last_response:  # repeated request (lost response): answer again, do not re-execute
                self.ch.send(f)
            return
        if not (ac & o.FIR and ac & o.FIN):
            self.os.counters["malformed_requests"] += 1
            self._respond_simple(seq, o.IIN_PARAMETER_ERROR)
            return
        handler = {
            o.READ: self.on_read, o.WRITE: self.on_write,
            o.ENABLE_UNSOLICITED: self.on_unsol_control, o.DISABLE_UNSOLICITED: self.on_unsol_control,
            o.DELAY_MEASURE: self.on_delay_measure, o.RECORD_CURRENT_TIME: self.on_record_time,
        }.get(fc)
        if fc in _CONTROL_FCS:
            handler = self.on_control
        if handler is None:
            self.os.counters["unknown_function"] += 1
            self.warn("function", "%s: function code %d not supported; answered IIN2.0", self.os.cfg.name, fc)
            self._respond_simple(seq, o.IIN_NO_FUNC_CODE)
        else:
            handler(seq, fc, frag[2:])
        self.last_request = frag

    def _respond_simple(self, seq: int, iin_extra: int = 0, body: bytes = b"") -> None:
        frag = o.response_header(o.FIR | o.FIN | seq, o.RESPONSE, self.os.iin() | iin_extra) + body
        self.last_response = [frag]
        self.os.counters["responses"] += 1
        self.ch.send(frag)

    def _parse(self, seq: int, body: bytes, with_data: bool) -> list[o.Header] | None:
        res = o.parse_objects(body, with_data, base=2)
        if res.error:
            self.os.counters["malformed_requests"] += 1
            self.warn("malformed", "%s: malformed request: %s; answered IIN2.2", self.os.cfg.name, res.error)
            self._respond_simple(seq, o.IIN_PARAMETER_ERROR)
            return None
        return res.headers

    def on_read(self, seq: int, fc: int, body: bytes) -> None:
        hs = self._parse(seq, body, with_data=False)
        if hs is None:
            return
        packer = FragmentPacker(self.os.max_fragment)
        ok = packer.add_reads(hs, self.os)
        self._send_solicited(seq, packer, 0 if ok else o.IIN_OBJECT_UNKNOWN)

    def _send_solicited(self, seq: int, packer: FragmentPacker, iin_extra: int) -> None:
        bodies = packer.fragments()
        controls: list[int] = []
        for k, (_, events) in enumerate(bodies):
            s = (seq + k) & 0x0F
            first, last = k == 0, k == len(bodies) - 1
            for e in events:
                e.tag = ("sol", s)
            con = (not last) or bool(events)
            controls.append((o.FIR if first else 0) | (o.FIN if last else 0) | (o.CON if con else 0) | s)
        # IIN after selection, so the class bits show only what is still unreported
        iin = self.os.iin() | iin_extra
        built = [o.response_header(ac, o.RESPONSE, iin) + b for ac, (b, _) in zip(controls, bodies)]
        self.os.counters["responses"] += len(built)
        self.last_response = built[:1]
        self.sol_queue = built[1:]
        self._send_next(built[0])

    def _send_next(self, frag: bytes) -> None:
        self.ch.send(frag)
        if frag[0] & o.CON:
            self.sol_wait = frag[0] & 0x0F
            loop = asyncio.get_running_loop()
            if self.sol_timer:
                self.sol_timer.cancel()
            self.sol_timer = loop.call_later(self.os.confirm_timeout, self._abandon_solicited)
        else:
            self.sol_wait = None

    def _abandon_solicited(self) -> None:
        if self.sol_wait is not None:
            log.info("%s: solicited confirm not received; events stay buffered", self.os.cfg.name)
        self.sol_wait = None
        self.sol_queue = []
        if self.sol_timer:
            self.sol_timer.cancel()
            self.sol_timer = None
        self.os.events.release("sol")
        self.os._wake.set()

    def on_confirm(self, ac: int) -> None:
        seq = ac & 0x0F
        if self.os.faults.confirm_loss:  # fault: the confirm never "arrives"; timeouts resend
            self.os.counters["confirms_ignored"] += 1
            return
        if ac & o.UNS:
            if self.unsol_pending is not None and seq == self.unsol_seq:
                self.os.events.confirm(("uns", seq))
                self.unsol_pending = None
                self.null_unsol_done = True
                self.unsol_seq = (self.unsol_seq + 1) & 0x0F
                self.os._wake.set()
            return
        if self.sol_wait is None or seq != self.sol_wait:
            log.debug("%s: unexpected confirm seq %d", self.os.cfg.name, seq)
            return
        self.os.events.confirm(("sol", seq))
        if self.sol_timer:
            self.sol_timer.cancel()
            self.sol_timer = None
        self.sol_wait = None
        if self.sol_queue:
            self._send_next(self.sol_queue.pop(0))
        else:
            self.os._wake.set()

    def on_write(self, seq: int, fc: int, body: bytes) -> None:
        hs = self._parse(seq, body, with_data=True)
        if hs is None:
            return
        err = 0
        for h in hs:
            if h.group == 80 and h.var == 1:
                for obj in h.objects:
                    if obj.index == 7 and not obj.value:
                        self.os.restart_iin = False
                    else:
                        err |= o.IIN_PARAMETER_ERROR
            elif h.group == 50 and h.var in (1, 3) and h.objects:
                self.os.time_offset_ms = int(h.objects[0].time_ms or 0) - o.now_ms()
                self.os.need_time = False
            else:
                err |= o.IIN_OBJECT_UNKNOWN
        self._respond_simple(seq, err)

    def on_unsol_control(self, seq: int, fc: int, body: bytes) -> None:
        hs = self._parse(seq, body, with_data=False)
        if hs is None:
            return
        if not self.os.cfg.dnp3.unsolicited:
            self._respond_simple(seq, o.IIN_NO_FUNC_CODE)
            return
        classes = {h.var - 1 for h in hs if h.group == 60 and h.var in (2, 3, 4)}
        bad = any(not (h.group == 60 and h.var in (2, 3, 4)) for h in hs)
        if fc == o.ENABLE_UNSOLICITED:
            self.unsol_enabled |= classes
        else:
            self.unsol_enabled -= classes
        self._respond_simple(seq, o.IIN_OBJECT_UNKNOWN if bad else 0)
        self.os._wake.set()

    def on_delay_measure(self, seq: int, fc: int, body: bytes) -> None:
        self._respond_simple(seq, 0, o.hdr_count(52, 2, [(0).to_bytes(2, "little")]))

    def on_record_time(self, seq: int, fc: int, body: bytes) -> None:
        self._respond_simple(seq)

    def on_control(self, seq: int, fc: int, body: bytes) -> None:
        hs = self._parse(seq, body, with_data=True)
        if hs is None:
            return
        now = time.monotonic()
        select_ok = True
        if fc == o.OPERATE:
            sel = self.select
            select_ok = bool(sel and sel[0] == ((seq - 1) & 0x0F) and sel[1] == body and now - sel[2] <= self.os.select_timeout)
            self.select = None
        out = bytearray()
        err = 0
        for h in hs:
            if (h.group, h.var) not in ((12, 1), (41, 1), (41, 2), (41, 3), (41, 4)):
                err |= o.IIN_OBJECT_UNKNOWN
                continue
            for obj in h.objects:
                obj.status = self._control_one(fc, h.group, obj) if select_ok else o.CommandStatus.NO_SELECT
            items = [(obj.index, o.encode(h.group, h.var, obj)) for obj in h.objects]
            if h.qualifier in (0x00, 0x01) and items:
                out += o.hdr_range(h.group, h.var, h.start, h.stop, b"".join(b for _, b in items))
            else:
                out += o.hdr_prefixed(h.group, h.var, items, h.qualifier)
        if fc == o.SELECT:
            self.select = (seq, body, now)
        if fc != o.DIRECT_OPERATE_NR:
            self._respond_simple(seq, err, bytes(out))

    def _control_one(self, fc: int, group: int, obj: o.Obj) -> int:
        point, value = self._command_target(group, obj)
        if point is None:
            return o.CommandStatus.NOT_SUPPORTED
        if point.command is not None and not point.command.enabled:
            return o.CommandStatus.NOT_AUTHORIZED  # the config says this point is not operable
        if fc == o.SELECT:
            return o.CommandStatus.SUCCESS
        return self.os.apply_command(point, value)

    def _command_target(self, group: int, obj: o.Obj) -> tuple[Dnp3Point | None, Any]:
        by = self.os.table.by_addr
        if group == 41:
            p = by.get(("analog_output", obj.index))
            return (p, to_engineering(p, obj.value)) if p else (None, None)
        code = (obj.crob or (0, 1, 0, 0))[0]
        op, tcc = code & 0x0F, code & 0xC0
        if tcc in (o.TCC_CLOSE, o.TCC_TRIP):
            on = tcc == o.TCC_CLOSE
        elif op in (o.LATCH_ON, o.PULSE_ON):
            on = True
        elif op in (o.LATCH_OFF, o.PULSE_OFF):
            on = False
        else:
            return None, None
        dbl, bo = by.get(("double_binary", obj.index)), by.get(("binary_output", obj.index))
        if tcc and dbl is not None or (bo is None and dbl is not None):
            return dbl, to_engineering(dbl, 2 if on else 1)  # type: ignore[arg-type]
        if bo is not None:
            return bo, to_engineering(bo, on)
        return None, None

    # ---------------------------------------------------------------- unsolicited
    async def _unsol_loop(self) -> None:
        wake = self.os._wake
        while True:
            timeout = None
            if self.unsol_pending is not None:
                timeout = max(0.0, self.unsol_deadline - time.monotonic())
            try:
                async with asyncio.timeout(timeout):
                    await wake.wait()
            except TimeoutError:
                pass
            wake.clear()
            if self._closed:
                return
            self._unsol_step()
            await self.ch.writer.drain()

    def _unsol_step(self) -> None:
        if not self.os.cfg.dnp3.unsolicited:
            return
        now = time.monotonic()
        if self.unsol_pending is not None:
            if now >= self.unsol_deadline:
                self.os.counters["unsol_retried"] += 1
                self._send_unsol(self.unsol_pending)
            return
        if not self.null_unsol_done:
            self._build_unsol([], b"")
            return
        if self.sol_wait is not None or not self.unsol_enabled:
            return
        events = self.os.events.pending(sorted(self.unsol_enabled))
        if not events:
            return
        packer = FragmentPacker(self.os.max_fragment)
        taken = packer.add_events(events, single=True)
        self._build_unsol(taken, packer.fragments()[0][0])

    def _build_unsol(self, events: list, body: bytes) -> None:
        for e in events:
            e.tag = ("uns", self.unsol_seq)
        ac = o.FIR | o.FIN | o.CON | o.UNS | self.unsol_seq
        frag = o.response_header(ac, o.UNSOLICITED_RESPONSE, self.os.iin()) + body
        self.unsol_pending = frag
        self._send_unsol(frag)

    def _send_unsol(self, frag: bytes) -> None:
        self.os.counters["unsol_sent"] += 1
        self.unsol_deadline = time.monotonic() + self.os.unsol_confirm_timeout
        self.ch.send(frag)
