"""The server's two I/O paths (``io="readers"``: add_reader on our own sockets, asyncio's
selector loop; ``io="transports"``: asyncio Transports, e.g. on uvloop) under a master that
does not read its replies: the server stops reading its requests instead of buffering without
bound, sends the rest of a reply the kernel did not take once the socket is writable, sends all
before closing on the master's EOF, and drops a connection reset in the middle of a reply."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import AsyncIterator

import pytest

from devices.modbus import ArrayDataModel, ModbusServer
from devices.modbus.server import RECV_BUFFER, _Connection, _Framing, _RawConnection
from tests.modbus.mbs_raw import TIMEOUT, Raw, adu, make_model, req

QTY = 125  # the largest FC3 read: 259-byte replies to 12-byte requests
REPLY = 7 + 2 + 2 * QTY
#: what the server may hold unsent: the replies of one read (RECV_BUFFER of requests), plus
#: asyncio's default write high-water mark (64 KiB) on the transport path
BOUND = 64 * 1024 + (RECV_BUFFER // 12) * REPLY


@pytest.fixture(params=["readers", "transports"])
async def server(request: pytest.FixtureRequest, model: ArrayDataModel) -> AsyncIterator[ModbusServer]:
    s = ModbusServer(model, io=request.param)
    await s.start()
    yield s
    await asyncio.wait_for(s.stop(), TIMEOUT)


def _conn(server: ModbusServer) -> _Framing:
    (c,) = server._conns
    return c


def _unsent(c: _Framing) -> int:
    if isinstance(c, _RawConnection):
        return len(c._pending)
    assert isinstance(c, _Connection)
    return c.transport.get_write_buffer_size()


def _server_socket(c: _Framing) -> socket.socket:
    return c._sock if isinstance(c, _RawConnection) else c.transport.get_extra_info("socket")  # type: ignore[attr-defined]


async def _slow_master(server: ModbusServer, n: int, tail: bytes = b"") -> tuple[socket.socket, asyncio.Task]:
    """A master with a tiny receive buffer that sends ``n`` FC3 reads and reads nothing yet;
    the server's send buffer is made small too, so its unsent replies show at once."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", server.port)), TIMEOUT)
    for _ in range(100):
        if server._conns:
            break
        await asyncio.sleep(0.01)
    _server_socket(_conn(server)).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    payload = b"".join(adu(req(3, "HH", 0, QTY), tid=k & 0xFFFF) for k in range(n)) + tail
    return sock, loop.create_task(loop.sock_sendall(sock, payload))


async def _until_reading_stops(server: ModbusServer) -> int:
    """requests read so far, once the count has not moved for 0.3 s"""
    before = -1
    for _ in range(50):
        now = server.stats.requests
        if now == before:
            return now
        before = now
        await asyncio.sleep(0.3)
    raise AssertionError(f"the server kept reading requests ({before}) from a master that reads nothing")


async def test_the_default_loop_runs_the_readers_path(model: ArrayDataModel) -> None:
    s = ModbusServer(model)
    await s.start()
    try:
        c = await Raw.open(s.port)
        assert await c.call(req(3, "HH", 0, 2)) == b"\x03\x04" + struct.pack(">HH", 1000, 1001)
        assert type(_conn(s)) is _RawConnection
        await c.close()
    finally:
        await s.stop()


async def test_transports_path_when_asked(server: ModbusServer) -> None:
    c = await Raw.open(server.port)
    assert await c.call(req(3, "HH", 5, 1)) == b"\x03\x02" + struct.pack(">H", 1005)
    assert type(_conn(server)) is (_RawConnection if server._io == "readers" else _Connection)
    await c.close()


async def test_slow_master_is_not_buffered_without_bound_and_gets_every_reply_in_order(server: ModbusServer) -> None:
    n = 20_000  # 240 KB of requests, 5.2 MB of replies
    loop = asyncio.get_running_loop()
    sock, sending = await _slow_master(server, n)
    try:
        read = await _until_reading_stops(server)
        assert 0 < read < n, "the server read every request of a master that reads no reply"
        held = _unsent(_conn(server))
        assert 0 < held <= BOUND, f"{held} reply bytes held for a master that does not read (bound {BOUND})"
        # the master reads now: the rest of the cut reply, then every later one, in order
        got = bytearray()
        while len(got) < n * REPLY:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), TIMEOUT)
            assert chunk, f"connection closed after {len(got)} of {n * REPLY} reply bytes"
            got += chunk
        await asyncio.wait_for(sending, TIMEOUT)
        values = b"".join(struct.pack(">H", 1000 + a) for a in range(QTY))
        for k in range(n):
            tid, pid, length, unit, fc, count = struct.unpack_from(">HHHBBB", got, k * REPLY)
            assert (tid, pid, length, unit, fc, count) == (k & 0xFFFF, 0, 3 + 2 * QTY, 1, 3, 2 * QTY), k
            assert got[k * REPLY + 9 : (k + 1) * REPLY] == values, k
        assert len(got) == n * REPLY
        st = server.stats
        assert (st.requests, st.responses, st.bytes_out) == (n, n, n * REPLY)
        # EOF from the master: the server closes its side too (nothing left to send)
        sock.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(loop.sock_recv(sock, 1), TIMEOUT) == b""
    finally:
        sock.close()


async def _read_to_eof(sock: socket.socket) -> bytearray:
    """Everything the server sends until it closes the connection."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), TIMEOUT):
        got += chunk
    return got


async def test_eof_with_replies_unsent_sends_them_all_then_closes(server: ModbusServer) -> None:
    n = 4_000
    loop = asyncio.get_running_loop()
    sock, sending = await _slow_master(server, n)
    try:
        await asyncio.wait_for(sending, TIMEOUT)  # 48 KB of requests: all in the kernel's buffers
        await _until_reading_stops(server)
        assert _unsent(_conn(server)) > 0
        sock.shutdown(socket.SHUT_WR)  # the master is done asking; it still wants its answers
        got = await _read_to_eof(sock)
        assert len(got) == n * REPLY
        assert [struct.unpack_from(">H", got, k * REPLY)[0] for k in range(n)] == list(range(n))
        for _ in range(100):
            if not server._conns:
                break
            await asyncio.sleep(0.01)
        assert server.stats.connections_active == 0
    finally:
        sock.close()


async def test_bad_length_after_many_requests_sends_their_replies_then_closes(server: ModbusServer) -> None:
    n = 3_000
    loop = asyncio.get_running_loop()
    sock, sending = await _slow_master(server, n, tail=adu(req(3, "HH", 0, 1), length=300))
    try:
        await asyncio.wait_for(sending, TIMEOUT)
        await _until_reading_stops(server)
        got = await _read_to_eof(sock)
        assert len(got) == n * REPLY, "replies written before the close were lost"
        assert struct.unpack_from(">H", got, (n - 1) * REPLY)[0] == n - 1
        assert server.stats.malformed == {"length": 1}
    finally:
        sock.close()


async def test_master_reset_while_replies_wait_drops_the_connection_quietly(
    server: ModbusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sock, sending = await _slow_master(server, 5_000)
    await _until_reading_stops(server)
    assert _unsent(_conn(server)) > 0
    sending.cancel()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST: the server's pending send fails
    for _ in range(200):
        if not server._conns:
            break
        await asyncio.sleep(0.01)
    assert server.stats.connections_active == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    c = await Raw.open(server.port)  # and it still serves
    assert await c.call(req(3, "HH", 0, 1)) == b"\x03\x02" + struct.pack(">H", 1000)
    await c.close()
    assert server.stats.connections_total == 2


def test_readers_need_the_selector_loop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> str:
        s = ModbusServer(make_model(), io="readers")
        with pytest.raises(RuntimeError, match="io='readers' needs asyncio's selector loop"):
            await s.start()
        s = ModbusServer(make_model())  # auto: transports on uvloop
        await s.start()
        try:
            c = await Raw.open(s.port)
            resp = await c.call(req(3, "HH", 1, 1))
            kind = type(_conn(s)).__name__
            await c.close()
        finally:
            await s.stop()
        assert resp == b"\x03\x02" + struct.pack(">H", 1001)
        return kind

    assert uvloop.run(main()) == "_Connection"


def test_unknown_io_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="io 'epoll' is not one of auto, readers, transports"):
        ModbusServer(make_model(), io="epoll")  # type: ignore[arg-type]
