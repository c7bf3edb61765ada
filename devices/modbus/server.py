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
- a master that does not read its replies is not read either (backpressure), on both I/O paths
  (``add_reader`` on asyncio's selector loop, Transports elsewhere; see ``IoMode``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from asyncio.selector_events import BaseSelectorEventLoop
from struct import Struct, pack, unpack_from
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Literal

from devices.modbus.faults import HEALTHY, ModbusFaults
from devices.modbus.model import ModbusDataModel
from devices.modbus.pdu import Responder
from devices.modbus.stats import LENGTH, PROTOCOL_ID, TRUNCATED, ConnStats, ServerStats
from devices.netguard import ConnGuard, GuardLimits, PeerWarnings, quiet_accept_errors
from devices.sharedlisten import Attachment, OwnListener, SharedListeners, SharedPortError, serve_accepted

if TYPE_CHECKING:
    from gateway.protocols.modbus.config import ModbusDevice

log = logging.getLogger(__name__)

MBAP = 7  # transaction id, protocol id, length, unit id
_MBAP_CHECK = Struct(">2xHHB").unpack_from  # protocol id, length, unit id
MIN_LENGTH = 2
MAX_LENGTH = 254
#: receive buffer per connection; an incomplete ADU (< 260 bytes) stays at its front, so reads
#: always have room. 4 KiB holds 340 pipelined FC3 requests per read (16 KiB was 12 KiB more
#: per connection, 120 MB at 10,000 emulated devices, for no measurable gain)
RECV_BUFFER = 4096
BACKLOG = 256

#: how connections do their I/O: "readers" (the selector loop's add_reader on our own non-blocking
#: sockets, see _RawConnection), "transports" (asyncio Protocol/Transport, any loop, e.g. uvloop),
#: "auto" (readers on a selector loop, transports elsewhere)
IoMode = Literal["auto", "readers", "transports"]


class ModbusServer:
    """One emulated device: ``await start()``, then ``port``, ``stats``, ``faults``; ``await stop()``.

    ``io`` (default ``default_io``): see IoMode; both ways serve the same bytes. ``listeners``: the
    emulator's shared ports (devices/sharedlisten.py): a device on a 127.x address of a shared port takes
    its connections from the port's one socket instead of opening its own."""

    default_io: IoMode = "auto"

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
        io: IoMode | None = None,
        listeners: SharedListeners | None = None,
    ) -> None:
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit_id {unit_id} is out of range; use 0..255")
        limits = limits or GuardLimits(max_connections=max_connections)
        if limits.max_connections < 1:
            raise ValueError(f"max_connections {limits.max_connections} must be at least 1")
        self._responder = Responder(model, HEALTHY)
        self.host = host
        self.unit_id = unit_id
        self.max_connections = limits.max_connections
        self.name = name or f"unit {unit_id}"
        self.guard = ConnGuard(f"modbus device {self.name}", limits)
        self.warnings = PeerWarnings(log)  # per-frame complaints: one line per peer per interval
        self.faults = faults
        self._units = frozenset((unit_id, 0, 255))
        self._want_port = port
        io = io or self.default_io
        if io not in ("auto", "readers", "transports"):
            raise ValueError(f"modbus device {self.name}: io {io!r} is not one of auto, readers, transports")
        self._io = io
        self._listeners = listeners
        self._server: OwnListener | Attachment | None = None
        self._conns: set[_Framing] = set()
        self._closed = ConnStats()
        self._refused = 0  # connections closed at once by the ``refuse`` fault

    @classmethod
    def for_device(cls, device: "ModbusDevice", model: ModbusDataModel, **kw: object) -> "ModbusServer":
        """The server of one configured device: its host, port, unit id and name."""
        kw.setdefault("limits", GuardLimits.of(device.connections))
        return cls(model, host=device.host, port=device.port, unit_id=device.unit_id, name=device.name, **kw)  # type: ignore[arg-type]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        readers = isinstance(loop, BaseSelectorEventLoop)
        if self._io == "readers" and not readers:
            raise RuntimeError(f"modbus device {self.name}: io='readers' needs asyncio's selector loop, not {type(loop).__name__}; use io='auto'")
        if self._io == "transports":
            readers = False
        try:
            take = (lambda sock: _RawConnection(self, loop, sock)) if readers else (
                lambda sock: serve_accepted(loop, sock, lambda: _Connection(self)))
            shared = None if self._listeners is None else self._listeners.attach(self.host, self._want_port, take, self.name)
            self._server = shared or await OwnListener.open(loop, self.host, self._want_port, take, BACKLOG)
        except SharedPortError:
            raise
        except OSError as e:
            raise OSError(
                e.errno,
                f"modbus device {self.name} cannot listen on {self.host}:{self._want_port} ({e.strerror}); "
                "give it a free port and an address of this machine",
            ) from None
        quiet_accept_errors(loop)
        self.guard.start_sweeps(loop)
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
        self.guard.stop_sweeps()
        for c in list(self._conns):
            c.abort()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> "ModbusServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def model(self) -> ModbusDataModel:
        """The register image served; assigning another one takes effect at the next request."""
        return self._responder.model

    @model.setter
    def model(self, value: ModbusDataModel) -> None:
        self._responder = Responder(value, self._faults)

    @property
    def faults(self) -> ModbusFaults:
        """Consulted on every request; assign a ModbusFaults (or its plain-data dict) to script faults."""
        return self._faults

    @faults.setter
    def faults(self, value: ModbusFaults | dict) -> None:
        f = value if isinstance(value, ModbusFaults) else ModbusFaults.model_validate(value)
        self._faults = f
        self._responder.set_faults(f)
        #: no fault touches the request or the reply (forced exceptions are the Responder's): the fast path
        self._plain = not (f.silent or f.disconnect or f.refuse or f.corrupts or f.delay_s or f.jitter_s or f.trickle_bps)
        if self._faults.refuse:
            for c in list(getattr(self, "_conns", ())):
                c.abort()

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

    def _admit(self, conn: "_Framing") -> bool:
        if not self.guard.admit(conn):
            return False
        self._conns.add(conn)
        return True

    def _gone(self, conn: "_Framing") -> None:
        self.guard.gone(conn)
        if conn in self._conns:
            self._conns.discard(conn)
            self._closed.add(conn.stats)


class _Framing:
    """MBAP framing and replies of one master's connection; the subclasses do the I/O
    (``_send``, ``abort``, ``_close``, ``_closing``): _RawConnection on the selector loop,
    _Connection (asyncio transports) on any other loop."""

    __slots__ = ("server", "stats", "peer", "opened", "last_active", "_buf", "_view", "_len", "_trickling")

    def __init__(self, server: ModbusServer) -> None:
        self.server = server
        self.stats = ConnStats()
        self.peer = "?"
        self.opened = self.last_active = _monotonic()
        self._buf = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buf)
        self._len = 0  # bytes of an incomplete ADU kept at the front of _buf
        self._trickling: asyncio.Task | None = None  # replies trickle out one after the other, never interleaved

    # ---- I/O, by the subclass

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Close at once, unsent replies dropped."""
        raise NotImplementedError

    def _close(self) -> None:
        """Close once the replies written so far are sent."""
        raise NotImplementedError

    def _closing(self) -> bool:
        raise NotImplementedError

    # ---- shared

    def _admitted(self) -> bool:
        """Refuse fault and the device's guard, when the connection is made."""
        if self.server.faults.refuse:
            self.server._refused += 1
            return False
        return self.server._admit(self)

    def close_by_guard(self, reason: str) -> None:
        """The device's guard drops this connection (idle timeout, or room for a newer one)."""
        self.abort()

    def _lost(self) -> None:
        if self._len:
            self.stats.malformed[TRUNCATED] += 1  # the master left in the middle of an ADU
            self._len = 0
        self.server._gone(self)

    def _frames(self, nbytes: int) -> None:
        """Every whole ADU in the buffer, answered in order in one write; a partial one is kept."""
        st = self.stats
        server = self.server
        buf = self._buf
        n = self._len + nbytes
        i = 0
        out: list[bytes] = []
        units = server._units
        table = server._responder.table
        plain = server._plain
        requests = 0
        while n - i >= MBAP:
            pid, length, unit = _MBAP_CHECK(buf, i)
            if not MIN_LENGTH <= length <= MAX_LENGTH:
                st.requests += requests
                self._bad_length(length, out)
                return
            end = i + 6 + length
            if end > n:
                break  # partial ADU: wait for the rest
            if pid:
                st.malformed[PROTOCOL_ID] += 1
            elif unit not in units:
                st.ignored_unit += 1
            else:
                requests += 1
                if not plain:
                    faults = server.faults
                    if faults.disconnect or faults.refuse:
                        st.requests += requests
                        st.silenced += 1
                        self.abort()
                        self._len = 0
                        return
                    if faults.silent:
                        st.silenced += 1
                        i = end
                        continue
                try:
                    adu = table[buf[i + 7]](buf, i, end)
                except Exception as e:
                    adu = self._failed(buf, i, e)
                out.append(adu)
            i = end
        st.requests += requests
        rest = n - i
        if rest and i:
            buf[:rest] = buf[i:n]  # keep the partial ADU (< 260 bytes) at the front
        self._len = rest
        if not out:
            return
        if plain:
            payload = out[0] if len(out) == 1 else b"".join(out)
            st.responses += len(out)
            st.bytes_out += len(payload)
            self._send(payload)
        else:
            self._flush(out, server.faults)

    def _whole_adu(self, nbytes: int) -> bytes | None:
        """Counts a read of ``nbytes``; the reply ADU if the read is exactly one whole ADU for a healthy
        device (the hot path of both I/O paths: one MBAP unpack, one Responder table call), else None
        (partial or several ADUs, another unit or protocol id, faults: the caller runs _frames)."""
        st = self.stats
        st.bytes_in += nbytes
        self.last_active = _monotonic()
        server = self.server
        if self._len or not server._plain:
            return None
        buf = self._buf
        pid, length, unit = _MBAP_CHECK(buf)
        if length + 6 != nbytes or pid or not MIN_LENGTH <= length <= MAX_LENGTH or unit not in server._units:
            return None
        st.requests += 1
        try:
            adu = server._responder.table[buf[7]](buf, 0, nbytes)
        except Exception as e:
            adu = self._failed(buf, 0, e)
        st.responses += 1
        st.bytes_out += len(adu)
        return adu

    def _failed(self, buf: bytearray, i: int, e: Exception) -> bytes:
        adu, code, bad = self.server._responder.failed(buf, i, e)
        st = self.stats
        st.exceptions[code] += 1
        if bad:
            st.malformed[bad] += 1
        return adu

    def _bad_length(self, length: int, out: list[bytes]) -> None:
        """MBAP length outside 2..254: the framing of the stream is lost; answer what came before, close."""
        server = self.server
        self.stats.malformed[LENGTH] += 1
        server.warnings.warn(
            self.peer.rsplit(":", 1)[0], "length",
            "modbus device %s: MBAP length %d from %s is outside %d..%d; framing lost, closing the connection",
            server.name, length, self.peer, MIN_LENGTH, MAX_LENGTH,
        )
        self._flush(out, server.faults)
        self._close()
        self._len = 0

    def _flush(self, out: list[bytes], faults: ModbusFaults) -> None:
        """Write the replies of one read, through the reply faults (corruption, delay, trickle)."""
        if not out:
            return
        if faults.corrupts:
            out = [_corrupt(adu, faults) for adu in out]
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
            if self._closing():
                return
            self._send(payload[k : k + 1])
            self.stats.bytes_out += 1
        self.stats.responses += count

    def _write(self, payload: bytes, count: int) -> None:
        if self._closing():
            return  # the master went away while the reply was delayed
        self.stats.responses += count
        self.stats.bytes_out += len(payload)
        self._send(payload)


class _RawConnection(_Framing):
    """A connection on asyncio's selector loop without its Transport: ``add_reader`` on our own
    non-blocking socket, ``recv_into`` the fixed buffer, ``send`` the reply straight away.

    Why: with one request in flight the loop and transport are most of the server's CPU; this
    skips _SelectorSocketTransport's read callbacks, the protocol dispatch and write()'s checks:
    39k → 35.7k user-space instructions per request (callgrind, FC3 with one request in flight;
    the loop's own floor is ~20.7k), ~0.3 µs CPU (docs/performance.md, "Stop 24"). A reply the kernel does not take whole (slow
    master, full socket buffer) is kept and sent when the socket is writable; meanwhile no
    request is read, so a master that does not read its replies holds at most the replies of
    one read (backpressure: TCP's window then stops it)."""

    __slots__ = ("_loop", "_sock", "_fd", "_recv_into", "_sock_send", "_pending", "_closed", "_close_when_sent")

    def __init__(self, server: ModbusServer, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        super().__init__(server)
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._pending = bytearray()  # unsent reply bytes (only while the socket is not writable)
        self._closed = False
        self._close_when_sent = False
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio's transports do
            p = sock.getpeername()
        except OSError:  # the master is gone already
            sock.close()
            self._closed = True
            return
        self.peer = f"{p[0]}:{p[1]}"
        self._recv_into = sock.recv_into
        self._sock_send = sock.send
        if not self._admitted():
            sock.close()
            self._closed = True
            return
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        # Hot path (bench/bench_modbus_server.py): one recv_into, and for a read holding exactly
        # one whole ADU of a healthy device one header unpack, one Responder table call and one
        # send; anything else goes through _frames (see _Connection.buffer_updated).
        try:
            nbytes = self._recv_into(self._view[self._len :] if self._len else self._view)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()  # reset by the master
            return
        if not nbytes:
            self._close()  # the master closed its side: send what is pending, then close
            return
        adu = self._whole_adu(nbytes)
        if adu is None:
            self._frames(nbytes)
        else:
            self._send(adu)

    def _send(self, data: bytes) -> None:
        if self._closed:
            return
        if self._pending:
            self._pending += data  # after what is still waiting, in order
            return
        try:
            sent = self._sock_send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.abort()  # the master is gone
            return
        if sent != len(data):
            self._keep(data, sent)

    def _keep(self, data: bytes, sent: int) -> None:
        """The kernel took ``sent`` bytes of ``data``: keep the rest, stop reading until it is sent."""
        self._pending += memoryview(data)[sent:]
        self._loop.remove_reader(self._fd)
        self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self._sock_send(self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        del self._pending[:sent]
        if self._pending:
            return
        self._loop.remove_writer(self._fd)
        if self._close_when_sent:
            self.abort()
        else:
            self._loop.add_reader(self._fd, self._readable)

    def _close(self) -> None:
        if self._closed:
            return
        if self._pending:
            self._close_when_sent = True
            self._loop.remove_reader(self._fd)
        else:
            self.abort()

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()
        self._loop.call_soon(self._lost)  # after the current callback, as asyncio's connection_lost

    def _closing(self) -> bool:
        return self._closed or self._close_when_sent


class _Connection(_Framing, asyncio.BufferedProtocol):
    """A connection through asyncio's Transport (uvloop, or ``io="transports"``). A BufferedProtocol:
    the loop ``recv_into``s a fixed buffer instead of allocating 256 KiB per read (measurably
    cheaper per request)."""

    __slots__ = ("transport",)
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if not self._admitted():
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def pause_writing(self) -> None:
        # backpressure: a master that does not read its replies is not read either (its requests
        # wait in TCP), so the transport buffers at most the high-water mark plus one read's replies
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._len :] if self._len else self._view

    def buffer_updated(self, nbytes: int) -> None:
        # Hot path (bench/bench_modbus_server.py). A master with one request in flight sends one
        # whole ADU per read: answered here with one unpack_from of the MBAP header, one call into
        # the Responder's table (which returns the whole response ADU) and one write. Anything else
        # (partial or several ADUs, other unit or protocol id, faults on the request or the reply)
        # goes through _frames. Server CPU per request with 1 in flight: 15-16.7 → 13-13.5 µs
        # (libmodbus ~10; the asyncio loop and transport alone ~11-12), docs/performance.md.
        adu = self._whole_adu(nbytes)
        if adu is None:
            self._frames(nbytes)
        else:
            self.transport.write(adu)

    def _send(self, data: bytes) -> None:
        self.transport.write(data)

    def abort(self) -> None:
        self.transport.abort()

    def _close(self) -> None:
        self.transport.close()

    def _closing(self) -> bool:
        return self.transport.is_closing()

def _corrupt(adu: bytes, faults: ModbusFaults) -> bytes:
    """A confused gateway or converter: the reply belongs to another request, or is cut short."""
    if faults.wrong_tid:
        adu = pack(">H", (unpack_from(">H", adu)[0] + 0x5A5A) & 0xFFFF) + adu[2:]
    if faults.short_reply:
        adu = adu[: max(0, len(adu) - faults.short_reply)]
    return adu
