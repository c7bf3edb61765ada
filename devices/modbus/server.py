"""The emulated Modbus TCP device: an asyncio server, many of them per event loop.

MBAP framing (Modbus Messaging on TCP/IP Implementation Guide v1.0b):
- transaction id and unit id are echoed; several ADUs in one segment are all answered,
  in order, in one write; a partial ADU waits for the rest of it.
- protocol id != 0: not a Modbus frame — dropped unanswered, counted ``malformed.protocol_id``.
- length outside 2..254 (unit id + PDU of at most 253 bytes): the framing of the stream is
  lost, so the connection is closed and ``malformed.length`` counted.
- unit id: a Modbus TCP device answers its configured unit id and also 0 and 255 (the
  "this device" ids that TCP masters commonly send); any other id is meant for a device
  behind a gateway we are not, so it is ignored (no reply) and counted ``ignored_unit``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from struct import pack, unpack_from
from typing import TYPE_CHECKING

from devices.modbus import pdu as _pdu
from devices.modbus.faults import HEALTHY, ModbusFaults
from devices.modbus.model import ModbusDataModel
from devices.modbus.stats import LENGTH, PROTOCOL_ID, TRUNCATED, ConnStats, ServerStats
from devices.netguard import ConnGuard, GuardLimits, PeerWarnings, quiet_accept_errors

if TYPE_CHECKING:
    from gateway.protocols.modbus.config import ModbusDevice

log = logging.getLogger(__name__)

MBAP = 7  # transaction id, protocol id, length, unit id
MIN_LENGTH = 2
MAX_LENGTH = 254
#: receive buffer; an incomplete ADU (< 260 bytes) stays at its front, so reads always have room
RECV_BUFFER = 16384


class ModbusServer:
    """One emulated device: ``await start()``, then ``port``, ``stats``, ``faults``; ``await stop()``."""

    def __init__(
        self,
        model: ModbusDataModel,
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int = 1,
        max_connections: int = 16,
        name: str = "",
        faults: ModbusFaults = HEALTHY,
        limits: GuardLimits | None = None,
    ) -> None:
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit_id {unit_id} is out of range; use 0..255")
        limits = limits or GuardLimits(max_connections=max_connections)
        if limits.max_connections < 1:
            raise ValueError(f"max_connections {limits.max_connections} must be at least 1")
        self.model = model
        self.host = host
        self.unit_id = unit_id
        self.max_connections = limits.max_connections
        self.name = name or f"unit {unit_id}"
        self.guard = ConnGuard(f"modbus device {self.name}", limits)
        self._sweeper: asyncio.Task | None = None
        self.warnings = PeerWarnings(log)  # per-frame complaints: one line per peer per interval
        self.faults = faults
        self._units = frozenset((unit_id, 0, 255))
        self._want_port = port
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._closed = ConnStats()
        self._refused = 0  # connections closed at once by the ``refuse`` fault

    @classmethod
    def for_device(cls, device: "ModbusDevice", model: ModbusDataModel, **kw: object) -> "ModbusServer":
        """The server of one configured device: its host, port, unit id and name."""
        kw.setdefault("limits", GuardLimits.of(device.connections))
        return cls(model, host=device.host, port=device.port, unit_id=device.unit_id, name=device.name, **kw)  # type: ignore[arg-type]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Connection(self), self.host, self._want_port, reuse_address=True, backlog=256
            )
        except OSError as e:
            raise OSError(
                e.errno,
                f"modbus device {self.name} cannot listen on {self.host}:{self._want_port} ({e.strerror}); "
                "give it a free port and an address of this machine",
            ) from None
        quiet_accept_errors(loop)
        self._sweeper = loop.create_task(self.guard.run_sweeps())
        log.info("modbus device %s listening on %s:%d", self.name, self.host, self.port)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError(f"modbus device {self.name} is not started; await start() first")
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for c in list(self._conns):
            c.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> "ModbusServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def faults(self) -> ModbusFaults:
        """Consulted on every request; assign a ModbusFaults (or its plain-data dict) to script faults."""
        return self._faults

    @faults.setter
    def faults(self, value: ModbusFaults | dict) -> None:
        self._faults = value if isinstance(value, ModbusFaults) else ModbusFaults.model_validate(value)
        if self._faults.refuse:
            for c in list(getattr(self, "_conns", ())):
                c.transport.abort()

    @property
    def stats(self) -> ServerStats:
        total = ConnStats()
        total.add(self._closed)
        for c in self._conns:
            total.add(c.stats)
        g = self.guard.counters
        return ServerStats.of(total, len(self._conns), g.accepted, g.refused + self._refused)

    def connection_stats(self) -> dict[str, ConnStats]:
        """live connections by peer address ``host:port``"""
        return {c.peer: c.stats for c in self._conns}

    # ---- called by connections

    def _admit(self, conn: "_Connection") -> bool:
        if not self.guard.admit(conn):
            return False
        self._conns.add(conn)
        return True

    def _gone(self, conn: "_Connection") -> None:
        self.guard.gone(conn)
        if conn in self._conns:
            self._conns.discard(conn)
            self._closed.add(conn.stats)


class _Connection(asyncio.BufferedProtocol):
    """One master's TCP connection. A BufferedProtocol: the loop ``recv_into``s a fixed
    buffer instead of allocating 256 KiB per read (measurably cheaper per request)."""

    __slots__ = ("server", "transport", "stats", "peer", "opened", "last_active", "_buf", "_view", "_len", "_trickling")

    def __init__(self, server: ModbusServer) -> None:
        self.server = server
        self.stats = ConnStats()
        self.peer = "?"
        self.opened = self.last_active = time.monotonic()
        self._buf = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buf)
        self._len = 0  # bytes of an incomplete ADU kept at the front of _buf
        self._trickling: asyncio.Task | None = None  # replies trickle out one after the other, never interleaved

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if self.server.faults.refuse:
            self.server._refused += 1
            transport.abort()
            return
        if not self.server._admit(self):
            transport.abort()

    def close_by_guard(self, reason: str) -> None:
        """The device's guard drops this connection (idle timeout, or room for a newer one)."""
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._len:
            self.stats.malformed[TRUNCATED] += 1  # the master left in the middle of an ADU
            self._len = 0
        self.server._gone(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._len :] if self._len else self._view

    def buffer_updated(self, nbytes: int) -> None:
        st = self.stats
        st.bytes_in += nbytes
        self.last_active = time.monotonic()
        buf = self._buf
        n = self._len + nbytes
        i = 0
        out: list[bytes] = []
        server = self.server
        units = server._units
        faults = server.faults
        model = server.model
        while n - i >= MBAP:
            tid, pid, length, unit = unpack_from(">HHHB", buf, i)
            if not MIN_LENGTH <= length <= MAX_LENGTH:
                st.malformed[LENGTH] += 1
                server.warnings.warn(
                    self.peer.rsplit(":", 1)[0], "length",
                    "modbus device %s: MBAP length %d from %s is outside %d..%d; framing lost, closing the connection",
                    server.name, length, self.peer, MIN_LENGTH, MAX_LENGTH,
                )
                self._flush(out, faults)
                self.transport.close()
                self._len = 0
                return
            end = i + 6 + length
            if end > n:
                break  # partial ADU: wait for the rest
            if pid != 0:
                st.malformed[PROTOCOL_ID] += 1
            elif unit not in units:
                st.ignored_unit += 1
            else:
                st.requests += 1
                if faults.disconnect or faults.refuse:
                    st.silenced += 1
                    self.transport.abort()
                    self._len = 0
                    return
                if faults.silent:
                    st.silenced += 1
                else:
                    resp, code, bad = _pdu.handle(model, faults, bytes(buf[i + 7 : end]))
                    if code:
                        st.exceptions[code] += 1
                        if bad:
                            st.malformed[bad] += 1
                    adu = pack(">HHHB", tid, 0, len(resp) + 1, unit) + resp
                    if faults.corrupts:
                        adu = _corrupt(adu, faults)
                    out.append(adu)
            i = end
        rest = n - i
        if rest and i:
            buf[:rest] = buf[i:n]  # keep the partial ADU (< 260 bytes) at the front
        self._len = rest
        self._flush(out, faults)

    def _flush(self, out: list[bytes], faults: ModbusFaults) -> None:
        if not out:
            return
        payload = b"".join(out) if len(out) > 1 else out[0]
        delay = faults.delay_s + (random.uniform(0, faults.jitter_s) if faults.jitter_s else 0.0)
        if faults.trickle_bps > 0:
            self._trickling = asyncio.get_running_loop().create_task(
                self._trickle(payload, len(out), delay, faults.trickle_bps, self._trickling)
            )
        elif delay > 0:
            asyncio.get_running_loop().call_later(delay, self._write, payload, len(out))
        else:
            self._write(payload, len(out))

    async def _trickle(self, payload: bytes, count: int, delay: float, bps: float, before: asyncio.Task | None) -> None:
        """A slow serial line behind a converter: the reply dribbles out byte by byte."""
        if before is not None and not before.done():
            await before
        if delay:
            await asyncio.sleep(delay)
        for k in range(len(payload)):
            if k:
                await asyncio.sleep(1.0 / bps)
            if self.transport.is_closing():
                return
            self.transport.write(payload[k : k + 1])
            self.stats.bytes_out += 1
        self.stats.responses += count

    def _write(self, payload: bytes, count: int) -> None:
        if self.transport.is_closing():
            return  # the master went away while the reply was delayed
        self.transport.write(payload)
        self.stats.responses += count
        self.stats.bytes_out += len(payload)


def _corrupt(adu: bytes, faults: ModbusFaults) -> bytes:
    """A confused gateway or converter: the reply belongs to another request, or is cut short."""
    if faults.wrong_tid:
        adu = pack(">H", (unpack_from(">H", adu)[0] + 0x5A5A) & 0xFFFF) + adu[2:]
    if faults.short_reply:
        adu = adu[: max(0, len(adu) - faults.short_reply)]
    return adu
