"""The gateway's DNP3 master for one outstation (IEEE 1815-2012 over TCP).

Session logic dnp3py's master lacks lives here: one request at a time per outstation
(a lock — dnp3py fails two concurrent requests on one connection), the startup sequence
(disable unsolicited, integrity poll, clear DEVICE_RESTART, time sync on NEED_TIME,
enable unsolicited), class 1/2/3 polls on schedule and whenever IIN class bits show events,
an integrity poll after restart or buffer overflow, confirms of multi-fragment and
unsolicited responses, duplicate unsolicited detection, repeated events dropped (an
outstation re-sends events whose confirm it did not get), values QUESTIONABLE|failure
while the outstation reports DEVICE_TROUBLE (IIN1.6), and reconnect/backoff/INVALID
marking inherited from :class:`DeviceSession`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from gateway.pipeline import Backoff, Emit
from gateway.protocols.dnp3 import objects as o
from gateway.protocols.dnp3.config import Dnp3Device
from gateway.protocols.dnp3.link import LinkChannel, LinkStats
from gateway.protocols.dnp3.points import PointTable
from gateway.site.quality import Q
from gateway.southbound.degrade import degraded
from gateway.southbound.dnp3 import checks
from gateway.southbound.dnp3.commands import CommandResult, Mode, command_body, echoed_status
from gateway.southbound.dnp3.readings import Unmapped, to_readings
from gateway.southbound.session import DeviceSession, DriverError

log = logging.getLogger(__name__)

_EVENT_CLASSES = (1, 2, 3)
_IIN2_NAMES = ((o.IIN_NO_FUNC_CODE, "function not supported"), (o.IIN_OBJECT_UNKNOWN, "object unknown"),
               (o.IIN_PARAMETER_ERROR, "parameter error"))
REPEAT_WINDOW = 256  # events per point remembered to drop a retransmission (outstation buffers are ~500)


#: pseudo status codes for outcomes the device never judged (real DNP3 codes are 0..127)
NOT_CONNECTED, NO_ECHO, REFUSED, NO_RESPONSE = -1, -2, -3, -4
#: our pseudo status names → the common outcome vocabulary; real codes other than SUCCESS are device_error
_OUTCOME_OF: dict[str, str] = {"NOT_CONNECTED": "not_connected", "NO_ECHO": "device_error", "REFUSED": "refused",
                               "NO_RESPONSE": "timed_out"}


class Dnp3Source(DeviceSession):
    protocol = "dnp3"

    def __init__(self, device: Dnp3Device, backoff: Backoff | None = None) -> None:
        super().__init__(device, backoff)
        self.cfg: Dnp3Device = device
        self.table = PointTable(device)
        self.link_stats = LinkStats()
        self.unmapped = Unmapped()
        self.stats: dict[str, int] = {
            "integrity_polls": 0, "event_polls": 0, "unsolicited": 0, "unsolicited_duplicates": 0,
            "readings": 0, "events": 0, "malformed_fragments": 0, "unexpected_responses": 0,
            "time_syncs": 0, "restarts_seen": 0, "overflows_seen": 0, "commands": 0, "device_trouble_seen": 0,
            "events_repeated": 0, "short_headers": 0, "read_errors_seen": 0,
        }
        # per point, the last events published (device time, value): an event the outstation sends
        # again because our confirm did not count (lost, or ignored) is dropped here and counted
        self._recent: dict[str, deque[tuple[float, Any]]] = {}
        self.iin = 0
        self._lock = asyncio.Lock()
        self._ch: LinkChannel | None = None
        self._reader: asyncio.Task | None = None
        self._responses: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._seq = 0
        self._emit: Emit | None = None
        self._wake = asyncio.Event()
        self._want_integrity = True
        self._want_events = False
        self._last_unsol: bytes | None = None
        self._read_errors = 0  # IIN2 error bits of the last poll response (checks.READ_ERRORS)

    # ---------------------------------------------------------------- DeviceSession
    async def connect(self) -> None:
        r, w = await asyncio.open_connection(self.cfg.host, self.cfg.port)
        d = self.cfg.dnp3
        self._ch = LinkChannel(r, w, d.master_address, d.outstation_address, is_master=True, stats=self.link_stats)
        self._responses = asyncio.Queue()
        self._seq = 0
        self._last_unsol = None
        self._want_integrity = True
        self.iin = 0
        self._read_errors = 0

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
            self._reader = None
        if self._ch:
            await self._ch.close()
            self._ch = None

    async def serve(self, emit: Emit) -> None:
        self._emit = emit
        self._reader = asyncio.create_task(self._read_loop())
        await self._startup()
        loop = asyncio.get_running_loop()
        d = self.cfg.dnp3
        next_integrity = loop.time() + d.integrity_interval
        next_events = loop.time() + d.event_poll_interval
        while True:
            if self._reader.done():
                raise DriverError("receive loop ended")
            now = loop.time()
            if self._want_integrity or now >= next_integrity:
                await self.integrity_poll()
                next_integrity = loop.time() + d.integrity_interval
                next_events = loop.time() + d.event_poll_interval
            elif self._want_events or now >= next_events:
                await self.event_poll()
                next_events = loop.time() + d.event_poll_interval
            if self.iin & (o.IIN_DEVICE_RESTART | o.IIN_NEED_TIME):
                await self._housekeeping()
            self.state.polls += 1
            self.state.last_ok = time.time()
            if self._want_integrity or self._want_events:
                continue
            self._wake.clear()
            delay = max(0.0, min(next_integrity, next_events) - loop.time())
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # ---------------------------------------------------------------- polls
    async def _startup(self) -> None:
        unsol = self.cfg.dnp3.unsolicited
        if unsol:
            await self.request(o.DISABLE_UNSOLICITED, o.class_reads(_EVENT_CLASSES))
        await self.integrity_poll()
        await self._housekeeping()
        if unsol:
            await self.request(o.ENABLE_UNSOLICITED, o.class_reads(_EVENT_CLASSES))

    async def integrity_poll(self) -> None:
        self._want_integrity = False
        self._want_events = False
        self.stats["integrity_polls"] += 1
        iin, hs = await self.request(o.READ, o.class_reads((1, 2, 3, 0)))
        self._note_read_errors(iin)
        self._publish(hs)

    async def event_poll(self) -> None:
        self._want_events = False
        self.stats["event_polls"] += 1
        iin, hs = await self.request(o.READ, o.class_reads(_EVENT_CLASSES))
        self._note_read_errors(iin)
        self._publish(hs)

    async def _housekeeping(self) -> None:
        if self.iin & o.IIN_DEVICE_RESTART:
            await self.request(o.WRITE, o.hdr_range(80, 1, 7, 7, b"\x00"))
        if self.iin & o.IIN_NEED_TIME:
            self.stats["time_syncs"] += 1
            await self.request(o.WRITE, o.hdr_count(50, 1, [o.now_ms().to_bytes(6, "little")]))

    # ---------------------------------------------------------------- transactions
    async def request(self, fc: int, body: bytes = b"") -> tuple[int, list[o.Header]]:
        """One request/response exchange; the lock keeps one transaction per outstation at a time."""
        async with self._lock:
            return await self._transact(fc, body)

    async def _transact(self, fc: int, body: bytes) -> tuple[int, list[o.Header]]:
        ch = self._ch
        if ch is None:
            raise DriverError("not connected")
        while not self._responses.empty():  # late answers to an earlier, timed-out request
            self._responses.get_nowait()
            self.stats["unexpected_responses"] += 1
        seq = self._seq
        self._seq = (seq + 1) & 0x0F
        ch.send(o.request(seq, fc, body))
        await ch.writer.drain()
        headers: list[o.Header] = []
        expect, first = seq, True
        while True:
            async with asyncio.timeout(self.cfg.timeout):  # not wait_for: 3.11's can swallow a cancel
                item = await self._responses.get()
            if isinstance(item, BaseException):
                raise item
            ac = item[0]
            if (ac & 0x0F) != expect or (first and not ac & o.FIR):
                self.stats["unexpected_responses"] += 1
                continue
            iin = item[2] | (item[3] << 8)
            res = o.parse_objects(item[4:], with_data=True, base=4)
            if res.error:
                self.stats["malformed_fragments"] += 1
                log.warning("%s: response to function %d: %s", self.device, fc, res.error)
            headers.extend(res.headers)
            if ac & o.CON:
                ch.send(bytes((o.FIR | o.FIN | (ac & 0x0F), o.CONFIRM)))
            self._note_iin(iin, solicited=True)
            if ac & o.FIN:
                if iin & o.IIN_NO_FUNC_CODE and fc not in (o.ENABLE_UNSOLICITED, o.DISABLE_UNSOLICITED):
                    log.warning("%s: outstation does not support function %d (IIN2.0)", self.device, fc)
                return iin, headers
            expect, first = (ac + 1) & 0x0F, False

    async def _read_loop(self) -> None:
        ch = self._ch
        assert ch is not None
        try:
            while True:
                frag = await ch.recv()
                if len(frag) < 4 or frag[1] not in (o.RESPONSE, o.UNSOLICITED_RESPONSE):
                    self.stats["malformed_fragments"] += 1
                    log.warning("%s: %d-octet fragment is not a response (function %s); dropped",
                                self.device, len(frag), frag[1] if len(frag) > 1 else "?")
                    continue
                if frag[1] == o.UNSOLICITED_RESPONSE or frag[0] & o.UNS:
                    self._on_unsolicited(frag)
                else:
                    self._responses.put_nowait(frag)
        except (EOFError, OSError) as e:
            self._responses.put_nowait(e)  # a transaction waiting for a reply fails with the real cause
            self._wake.set()

    def _on_unsolicited(self, frag: bytes) -> None:
        ac = frag[0]
        if ac & o.CON and self._ch:
            self._ch.send(bytes((o.FIR | o.FIN | o.UNS | (ac & 0x0F), o.CONFIRM)))
        if frag == self._last_unsol:
            self.stats["unsolicited_duplicates"] += 1  # retry after our confirm was lost: already published
            return
        self._last_unsol = frag
        self.stats["unsolicited"] += 1
        res = o.parse_objects(frag[4:], with_data=True, base=4)
        if res.error:
            self.stats["malformed_fragments"] += 1
            log.warning("%s: unsolicited response: %s", self.device, res.error)
        self._note_iin(frag[2] | (frag[3] << 8), solicited=False)
        self._publish(res.headers)

    def _note_iin(self, iin: int, solicited: bool) -> None:
        if iin & o.IIN_DEVICE_RESTART and not self.iin & o.IIN_DEVICE_RESTART:
            self.stats["restarts_seen"] += 1
            self._want_integrity = True
        if iin & o.IIN_EVENT_BUFFER_OVERFLOW and not self.iin & o.IIN_EVENT_BUFFER_OVERFLOW:
            # on the rising edge only: an outstation that keeps IIN2.3 up must not get back-to-back integrity polls
            self.stats["overflows_seen"] += 1
            log.warning("%s: outstation event buffer overflowed (IIN2.3); integrity poll follows", self.device)
            self._want_integrity = True
        if solicited and iin & (o.IIN_CLASS1 | o.IIN_CLASS2 | o.IIN_CLASS3):
            self._want_events = True
        trouble, was = iin & o.IIN_DEVICE_TROUBLE, self.iin & o.IIN_DEVICE_TROUBLE
        self.iin = iin
        if trouble and not was:  # every value of the device becomes QUESTIONABLE|failure at once
            self.stats["device_trouble_seen"] += 1
            log.warning("%s: outstation reports DEVICE_TROUBLE (IIN1.6); its values are QUESTIONABLE", self.device)
            if self._emit is not None:
                now = time.time()  # the quality changed now (as an IEC 61850 t would say)
                for r in list(self.last.values()):  # DeviceSession's last published readings
                    self._emit(degraded(r, Q.FAILURE, now))
        elif was and not trouble:  # trouble over: fresh GOOD values by an integrity poll
            log.info("%s: DEVICE_TROUBLE cleared; integrity poll follows", self.device)
            self._want_integrity = True
        if self._want_integrity or self._want_events or iin & (o.IIN_DEVICE_RESTART | o.IIN_NEED_TIME):
            self._wake.set()

    def _note_read_errors(self, iin: int) -> None:
        """IIN2.0-2.2 on a poll response: the device's values become QUESTIONABLE|INCONSISTENT until a clean poll."""
        err, was = checks.read_errors(iin), self._read_errors
        self._read_errors = err
        if err and not was:
            self.stats["read_errors_seen"] += 1
            log.warning("%s: outstation did not fully answer a poll (IIN2 0x%02X: %s); its values are QUESTIONABLE",
                        self.device, err >> 8, ", ".join(n for b, n in _IIN2_NAMES if err & b))
            self._republish_degraded(list(self.last.values()))
        elif was and not err:
            log.info("%s: poll answered in full again; integrity poll follows", self.device)
            self._want_integrity = True
            self._wake.set()

    def _republish_degraded(self, last: list[Any]) -> None:
        if self._emit is not None:
            now = time.time()
            for r in last:
                self._emit(degraded(r, Q.INCONSISTENT, now))

    def _publish(self, headers: list[o.Header]) -> None:
        if self._emit is None:
            return
        headers, short = checks.split_short(headers)
        for h in short:  # the framing lied: publish nothing from it, flag what it claimed
            self.stats["short_headers"] += 1
            pts = checks.claimed_points(self.table, h)
            log.warning("%s: g%dv%d header claims %d objects but carries %d; dropped, %d point(s) QUESTIONABLE",
                        self.device, h.group, h.var, h.count, len(h.objects), len(pts))
            keys = {f"{self.device}/{p.name}" for p in pts}
            self._republish_degraded([r for k, r in self.last.items() if k in keys])
        trouble = self.iin & o.IIN_DEVICE_TROUBLE
        for r in to_readings(self.device, self.table, headers, time.time(), self.unmapped):
            if r.event and self._repeated(r.key, (r.timestamp, r.value)):
                self.stats["events_repeated"] += 1
                continue
            if trouble:
                r = degraded(r, Q.FAILURE)
            if self._read_errors:
                r = degraded(r, Q.INCONSISTENT)
            self.stats["readings"] += 1
            if r.event:
                self.stats["events"] += 1
            self._emit(r)

    def _repeated(self, key: str, ev: tuple[float, Any]) -> bool:
        seen = self._recent.setdefault(key, deque(maxlen=REPEAT_WINDOW))
        if ev in seen:
            return True
        seen.append(ev)
        return False

    # ---------------------------------------------------------------- commands
    async def operate(self, point_name: str, value: float | int | bool, mode: Mode = "direct") -> CommandResult:
        """Operate one output: CROB (latch, or trip/close on a breaker) or analog output, direct or SBO."""
        self.stats["commands"] += 1

        def result(status: int, name: str | None = None, detail: str = "") -> CommandResult:
            name = name or o.COMMAND_STATUS.get(status, f"STATUS_{status}")
            outcome = _OUTCOME_OF.get(name, "accepted" if status == o.CommandStatus.SUCCESS else "device_error")
            return CommandResult(point=point_name, value=value, mode=mode, status=status, name=name, ok=status == o.CommandStatus.SUCCESS,
                                 detail=detail, outcome=outcome, reason="" if status == o.CommandStatus.SUCCESS else (detail or name))

        try:
            p = self.table.point(point_name)
            group, body = command_body(p, value)
        except (KeyError, ValueError, TypeError) as e:
            return result(REFUSED, "REFUSED", str(e).strip("'\""))
        if self._ch is None or not self.connected:
            return result(NOT_CONNECTED, "NOT_CONNECTED", f"{self.device} is not connected")
        try:
            async with self._lock:
                if mode == "sbo":
                    _, hs = await self._transact(o.SELECT, body)
                    st = echoed_status(hs, group, p.index)
                    if st is None:
                        return result(NO_ECHO, "NO_ECHO", "select response did not echo the point")
                    if st != o.CommandStatus.SUCCESS:
                        return result(st, detail="select refused")
                _, hs = await self._transact(o.OPERATE if mode == "sbo" else o.DIRECT_OPERATE, body)
        except (TimeoutError, asyncio.TimeoutError):
            return result(NO_RESPONSE, "NO_RESPONSE", "no response within the timeout; the operate may or may not have taken effect")
        except (DriverError, OSError, EOFError) as e:
            return result(NOT_CONNECTED, "NOT_CONNECTED", str(e))
        st = echoed_status(hs, group, p.index)
        if st is None:
            return result(NO_ECHO, "NO_ECHO", "operate response did not echo the point")
        return result(st)

    def status_counters(self) -> dict[str, Any]:
        """Protocol counters for the status topic: polls/events/commands, unmapped points, link layer, IIN bits."""
        return {**self.stats, "unmapped": self.unmapped.count, "link": self.link_stats.as_dict(), "iin": self.iin}
