"""MBAP framing, unit ids, pipelining, partial frames, connections and counters."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from devices.modbus import ArrayDataModel, ModbusServer
from tests.modbus.mbs_raw import TIMEOUT, Raw, adu, req


def read_hr(addr: int, n: int = 1) -> bytes:
    return req(3, "HH", addr, n)


def hr_resp(*values: int) -> bytes:
    return bytes((3, 2 * len(values))) + struct.pack(f">{len(values)}H", *values)


async def test_transaction_id_and_unit_id_echoed(raw: Raw) -> None:
    for tid in (0, 1, 0x1234, 0xFFFF):
        await raw.send(adu(read_hr(5), tid=tid, unit=1))
        assert await raw.recv() == (tid, 0, 1, hr_resp(1005))


@pytest.mark.parametrize("unit", [0, 255])
async def test_unit_0_and_255_are_answered(raw: Raw, unit: int) -> None:
    await raw.send(adu(read_hr(6), tid=9, unit=unit))
    assert await raw.recv() == (9, 0, unit, hr_resp(1006))


async def test_other_unit_ids_are_ignored_and_counted(raw: Raw, server: ModbusServer) -> None:
    await raw.send(adu(read_hr(1), tid=1, unit=2) + adu(read_hr(1), tid=2, unit=247) + adu(read_hr(2), tid=3, unit=1))
    assert await raw.recv() == (3, 0, 1, hr_resp(1002))
    assert await raw.silent(0.2)
    st = server.stats
    assert (st.ignored_unit, st.requests, st.responses) == (2, 1, 1)


async def test_protocol_id_not_zero_is_dropped_and_counted(raw: Raw, server: ModbusServer) -> None:
    await raw.send(adu(read_hr(1), tid=1, pid=1) + adu(read_hr(2), tid=2, pid=0xFFFF) + adu(read_hr(3), tid=3))
    assert await raw.recv() == (3, 0, 1, hr_resp(1003))
    assert await raw.silent(0.2)
    assert server.stats.malformed == {"protocol_id": 2}
    assert server.stats.requests == 1


@pytest.mark.parametrize("length", [0, 1, 255, 0xFFFF])
async def test_bad_mbap_length_closes_connection_and_counts(
    raw: Raw, server: ModbusServer, length: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="devices.modbus")
    # a good request in front of the bad one is still answered
    await raw.send(adu(read_hr(4), tid=1) + adu(read_hr(1), tid=2, length=length) + b"\x00" * 8)
    assert await raw.recv() == (1, 0, 1, hr_resp(1004))
    assert await raw.closed()
    assert server.stats.malformed == {"length": 1}
    assert f"MBAP length {length}" in caplog.text and "closing the connection" in caplog.text


async def test_two_requests_in_one_segment_both_answered_in_order(server: ModbusServer) -> None:
    # a blocking socket with TCP_NODELAY and one sendall: the two ADUs leave as one segment
    def exchange() -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(adu(read_hr(1), tid=11) + adu(req(4, "HH", 2, 2), tid=12))
            want = 2 * 7 + 2 + 2 + 2 + 4
            got = b""
            while len(got) < want:
                chunk = s.recv(4096)
                assert chunk, "server closed the connection"
                got += chunk
            return got

    got = await asyncio.wait_for(asyncio.to_thread(exchange), TIMEOUT * 2)
    assert got == adu(hr_resp(1001), tid=11) + adu(bytes((4, 4)) + struct.pack(">2H", 2002, 2003), tid=12)
    assert server.stats.requests == 2 and server.stats.responses == 2


async def test_many_pipelined_requests_in_one_write(raw: Raw, server: ModbusServer) -> None:
    # 3000 ADUs of 12 bytes: more than the server's receive buffer, so frames straddle reads
    n = 3000
    await raw.send(b"".join(adu(read_hr(k % 200), tid=k) for k in range(n)))
    for k in range(n):
        assert await raw.recv() == (k, 0, 1, hr_resp(1000 + k % 200))
    assert server.stats.requests == n and server.stats.malformed == {}


async def test_partial_frames_across_segments(raw: Raw, server: ModbusServer) -> None:
    frame = adu(req(16, "HHB", 50, 2, 4, tail=b"\x00\x07\x00\x08"), tid=77)
    for b in frame[:-1]:  # one byte per write, with a pause so each is its own segment
        await raw.send(bytes((b,)))
        await asyncio.sleep(0.002)
    assert await raw.silent(0.1)
    await raw.send(frame[-1:])
    assert await raw.recv() == (77, 0, 1, req(16, "HH", 50, 2))
    # a segment boundary inside the second of two frames
    two = adu(read_hr(50), tid=1) + adu(read_hr(51), tid=2)
    await raw.send(two[:18])
    assert await raw.recv() == (1, 0, 1, hr_resp(7))
    await raw.send(two[18:])
    assert await raw.recv() == (2, 0, 1, hr_resp(8))
    assert server.stats.malformed == {}


async def test_half_an_adu_at_close_is_counted(server: ModbusServer) -> None:
    c = await Raw.open(server.port)
    await c.send(adu(read_hr(1))[:9])
    assert await c.silent(0.1)
    await c.close()
    for _ in range(100):
        if server.stats.connections_active == 0:
            break
        await asyncio.sleep(0.01)
    assert server.stats.malformed == {"truncated": 1} and server.stats.requests == 0


async def test_many_connections_at_once(model: ArrayDataModel) -> None:
    n, per = 100, 10
    async with ModbusServer(model, max_connections=n) as s:
        conns = await asyncio.gather(*(Raw.open(s.port) for _ in range(n)))

        async def work(i: int, c: Raw) -> None:
            for k in range(per):
                a = (i + k) % 200
                assert await c.call(read_hr(a), tid=k) == hr_resp(1000 + a)

        await asyncio.wait_for(asyncio.gather(*(work(i, c) for i, c in enumerate(conns))), 10)
        st = s.stats
        assert (st.requests, st.responses, st.connections_active, st.connections_total) == (n * per, n * per, n, n)
        assert all(cs.requests == per for cs in s.connection_stats().values())
        await asyncio.gather(*(c.close() for c in conns))
        for _ in range(100):
            if s.stats.connections_active == 0:
                break
            await asyncio.sleep(0.01)
        assert s.stats.connections_active == 0 and s.stats.requests == n * per  # closed ones still counted


async def test_connection_limit_refuses_with_a_log_line(model: ArrayDataModel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="devices.modbus")
    async with ModbusServer(model, max_connections=2, name="pq-meter") as s:
        a, b = await Raw.open(s.port), await Raw.open(s.port)
        assert await a.call(read_hr(0)) == hr_resp(1000)
        c = await Raw.open(s.port)
        assert await c.closed()
        assert s.stats.connections_rejected == 1 and s.stats.connections_active == 2
        assert "pq-meter" in caplog.text and "refused connection" in caplog.text and "max_connections" in caplog.text
        await a.close()
        for _ in range(100):
            if s.stats.connections_active < 2:
                break
            await asyncio.sleep(0.01)
        d = await Raw.open(s.port)
        assert await d.call(read_hr(1)) == hr_resp(1001)
        assert await b.call(read_hr(2)) == hr_resp(1002)
        await asyncio.gather(b.close(), c.close(), d.close())


async def test_binds_loopback_by_default_and_reports_port(server: ModbusServer) -> None:
    assert server.host == "127.0.0.1"
    assert server._server is not None
    assert {sock.getsockname()[0] for sock in server._server.sockets} == {"127.0.0.1"}
    assert 0 < server.port < 65536


async def test_not_started_port_is_a_clear_error(model: ArrayDataModel) -> None:
    with pytest.raises(RuntimeError, match="await start"):
        ModbusServer(model).port


async def test_stop_drops_open_connections(model: ArrayDataModel) -> None:
    s = ModbusServer(model)
    await s.start()
    c = await Raw.open(s.port)
    assert await c.call(read_hr(3)) == hr_resp(1003)
    await asyncio.wait_for(s.stop(), TIMEOUT)
    assert await c.closed()
    with pytest.raises(OSError):
        await Raw.open(c.writer.get_extra_info("peername")[1])
    await c.close()


async def test_byte_counters(raw: Raw, server: ModbusServer) -> None:
    await raw.call(read_hr(0, 2))
    st = server.stats
    assert (st.bytes_in, st.bytes_out) == (12, 7 + 2 + 4)


async def test_for_device_uses_the_configured_host_port_unit_and_name(model: ArrayDataModel) -> None:
    from gateway.protocols.modbus.config import ModbusDevice

    with socket.socket() as probe:  # a free port for the configured device
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dev = ModbusDevice.model_validate(
        {
            "name": "pqm-inc1", "kind": "meter", "protocol": "modbus", "port": port, "unit_id": 7,
            "points": [{"name": "P", "table": "holding", "address": 0, "type": "float32",
                        "measurement": {"equipment": "S/B/CB", "type": "ThreePhaseActivePower"}}],
        }
    )
    async with ModbusServer.for_device(dev, model) as s:
        assert (s.host, s.port, s.unit_id, s.name) == ("127.0.0.1", port, 7, "pqm-inc1")
        c = await Raw.open(port)
        assert await c.call(read_hr(0), unit=7) == hr_resp(1000)
        await c.send(adu(read_hr(0), unit=1))  # not ours any more
        assert await c.silent(0.2)
        assert s.stats.ignored_unit == 1
        await c.close()


async def test_port_in_use_is_a_clear_error(server: ModbusServer, model: ArrayDataModel) -> None:
    with pytest.raises(OSError, match=rf"cannot listen on 127.0.0.1:{server.port} .*free port"):
        await ModbusServer(model, port=server.port, name="dup").start()


async def test_random_byte_streams_never_break_the_server(server: ModbusServer, caplog: pytest.LogCaptureFixture) -> None:
    import random

    caplog.set_level(logging.ERROR, logger="asyncio")
    rnd = random.Random(104)
    for _ in range(40):
        c = await Raw.open(server.port)
        await c.send(rnd.randbytes(rnd.randrange(1, 700)))
        await c.close()
    for _ in range(200):
        if server.stats.connections_active == 0:
            break
        await asyncio.sleep(0.01)
    c = await Raw.open(server.port)
    assert await c.call(read_hr(7)) == hr_resp(1007)
    await c.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    st = server.stats
    # every stream is accounted for: a request, an ignored unit id, or a malformed frame
    assert st.connections_total == 41 and sum(st.malformed.values()) + st.ignored_unit + st.requests >= 40


# ---- one ADU per read (the server's fast path) must keep every framing rule


async def test_lone_adu_with_protocol_id_not_zero_is_dropped(raw: Raw, server: ModbusServer) -> None:
    await raw.send(adu(read_hr(1), tid=1, pid=1))  # alone in its segment
    assert await raw.silent(0.2)
    assert await raw.call(read_hr(2), tid=2) == hr_resp(1002)
    st = server.stats
    assert (st.malformed, st.requests, st.responses) == ({"protocol_id": 1}, 1, 1)


async def test_lone_adu_whose_length_matches_the_read_but_exceeds_254_closes(raw: Raw, server: ModbusServer) -> None:
    # 261 bytes with MBAP length 255: "one whole ADU" by its own length, but no Modbus ADU is that long
    frame = adu(read_hr(1) + b"\x00" * 249, tid=1)
    assert len(frame) == 261 and struct.unpack_from(">H", frame, 4)[0] == 255
    await raw.send(frame)
    assert await raw.closed()
    assert server.stats.malformed == {"length": 1} and server.stats.responses == 0


async def test_request_split_after_the_mbap_header(raw: Raw, server: ModbusServer) -> None:
    frame = adu(read_hr(9, 2), tid=0x0102)
    await raw.send(frame[:7])
    assert await raw.silent(0.1)
    await raw.send(frame[7:])
    assert await raw.recv() == (0x0102, 0, 1, hr_resp(1009, 1010))
    # and right after it, one whole ADU per read again
    assert await raw.call(read_hr(11), tid=3) == hr_resp(1011)
    assert server.stats.requests == 2 and server.stats.bytes_in == 24


async def test_lone_adus_with_reply_faults_switched_live(raw: Raw, server: ModbusServer) -> None:
    from devices.modbus import ModbusFaults

    server.faults = ModbusFaults(wrong_tid=True)
    await raw.send(adu(read_hr(3), tid=5))
    assert await raw.recv() == ((5 + 0x5A5A) & 0xFFFF, 0, 1, hr_resp(1003))
    server.faults = ModbusFaults(short_reply=2)
    await raw.send(adu(read_hr(3, 2), tid=6))
    cut = await asyncio.wait_for(raw.reader.readexactly(11), TIMEOUT)
    assert cut == adu(hr_resp(1003, 1004), tid=6)[:-2]  # the MBAP length still says 7
    server.faults = {"silent": True}
    await raw.send(adu(read_hr(3), tid=7))
    assert await raw.silent(0.2)
    server.faults = ModbusFaults()
    assert await raw.call(read_hr(4), tid=8) == hr_resp(1004)
    st = server.stats
    assert (st.requests, st.responses, st.silenced) == (4, 3, 1)


async def test_forced_exception_on_a_lone_adu_echoes_tid_and_unit(raw: Raw, server: ModbusServer) -> None:
    from devices.modbus import ForcedException, ModbusFaults

    server.faults = ModbusFaults(exceptions=(ForcedException(code=6, function=3, start=10, end=19),))
    await raw.send(adu(read_hr(15), tid=0xBEEF, unit=255))
    assert await raw.recv() == (0xBEEF, 0, 255, bytes((0x83, 6)))
    assert await raw.call(read_hr(20), tid=2) == hr_resp(1020)  # outside the range: answered
    assert server.stats.exceptions == {6: 1}


async def test_assigning_another_model_serves_it(raw: Raw, server: ModbusServer) -> None:
    other = ArrayDataModel(holding=2)
    other.set_register("holding", 1, 4242)
    server.model = other
    assert server.model is other
    assert await raw.call(read_hr(1)) == hr_resp(4242)
    assert await raw.call(read_hr(2)) == bytes((0x83, 2))  # the new image's size bounds the reads
