"""The Modbus comms faults added for fault scripting, checked on the wire with raw MBAP
frames: wrong transaction id, short replies, byte trickle, jitter, disconnect, refuse."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from devices.modbus import ArrayDataModel, ModbusServer
from devices.modbus.faults import ModbusFaults
from devices.modbus.faults import merge as modbus_faults
from devices.scenario.faults import Delay, ExceptionReply, Trickle, WrongTid

READ = struct.pack(">HHHBBHH", 0x1234, 0, 6, 1, 3, 0, 2)  # tid 0x1234: read holding 0..1
GOOD = struct.pack(">HHHBBB", 0x1234, 0, 7, 1, 3, 4) + struct.pack(">HH", 1000, 1001)


@pytest.fixture
async def server():
    m = ArrayDataModel(coil=8, discrete_input=8, holding=10, input=10)
    m.set_register("holding", 0, 1000)
    m.set_register("holding", 1, 1001)
    s = ModbusServer(m, unit_id=1)
    await s.start()
    yield s
    await asyncio.wait_for(s.stop(), 5)


async def ask(port: int, n: int = len(GOOD), timeout: float = 2.0) -> bytes:
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    try:
        w.write(READ)
        await w.drain()
        out = b""
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(r.read(n - len(out)), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        w.close()


async def test_healthy_reply(server: ModbusServer) -> None:
    assert await ask(server.port) == GOOD


async def test_wrong_transaction_id(server: ModbusServer) -> None:
    server.faults = ModbusFaults(wrong_tid=True)
    got = await ask(server.port)
    assert len(got) == len(GOOD) and got[2:] == GOOD[2:]
    assert struct.unpack(">H", got[:2])[0] == (0x1234 + 0x5A5A) & 0xFFFF


async def test_short_reply_keeps_the_length_field(server: ModbusServer) -> None:
    server.faults = ModbusFaults(short_reply=3)
    got = await ask(server.port, timeout=0.5)
    assert got == GOOD[:-3]  # MBAP still announces 7 bytes: the master waits for bytes that never come


async def test_trickle_writes_byte_by_byte(server: ModbusServer) -> None:
    server.faults = ModbusFaults(trickle_bps=40)
    t0 = time.monotonic()
    got = await ask(server.port, timeout=3)
    took = time.monotonic() - t0
    assert got == GOOD
    assert 0.25 <= took <= 1.5  # 13 bytes at 40 B/s ≈ 0.3 s
    assert server.stats.responses == 1


async def test_jitter_adds_bounded_random_delay(server: ModbusServer) -> None:
    server.faults = ModbusFaults(delay_s=0.1, jitter_s=0.1)
    for _ in range(3):
        t0 = time.monotonic()
        assert await ask(server.port) == GOOD
        assert 0.09 <= time.monotonic() - t0 <= 0.6


async def test_disconnect_closes_on_request_and_refuse_closes_at_once(server: ModbusServer) -> None:
    server.faults = ModbusFaults(disconnect=True)
    assert await ask(server.port) == b""  # accepted, then closed on the request
    assert server.stats.silenced == 1 and server.stats.responses == 0
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    await asyncio.sleep(0.1)
    server.faults = ModbusFaults(refuse=True)  # drops the open connection too
    assert await asyncio.wait_for(r.read(), 2) == b""
    w.close()
    assert await ask(server.port) == b""
    assert server.stats.connections_rejected >= 1
    server.faults = ModbusFaults()
    assert await ask(server.port) == GOOD


def test_merging_scenario_faults_into_the_hook() -> None:
    merged = modbus_faults([Delay(kind="delay", ms=300), Delay(kind="delay", ms=100, jitter_ms=50),
                            Trickle(kind="trickle", bytes_per_s=100), Trickle(kind="trickle", bytes_per_s=10),
                            WrongTid(kind="wrong_tid"), ExceptionReply(kind="exception", code=4, function=3, start=5, end=9)])
    assert (merged.delay_s, merged.jitter_s, merged.trickle_bps, merged.wrong_tid) == (0.3, 0.05, 10, True)
    assert merged.forced(3, 6, 6) == 4 and merged.forced(4, 6, 6) is None
    assert modbus_faults([]).healthy
    with pytest.raises(ValueError, match="not a Modbus exception"):
        modbus_faults([ExceptionReply(kind="exception", code=7)])
