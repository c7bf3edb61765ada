"""The Modbus driver end to end against the emulated device (devices.modbus.ModbusServer)
over real loopback sockets: values, quality, timestamps, coalescing, comms loss and return,
exception and short replies."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time

import pytest

from devices.modbus import ArrayDataModel, ForcedException, ModbusFaults, ModbusServer
from gateway.site.quality import COMMS_LOST, Q
from tests.modbus.helpers import WAIT, device, free_port, point, running
from tests.modbus.rogue import start_short_replier

POLL = 0.2
GOOD = 0
LOST = int(COMMS_LOST)


def layout() -> tuple[list, dict[str, float | int]]:
    """20 holding points in two clusters (0..15 and 100..109) → 2 block reads per poll."""
    pts = [
        point("v_abcd", "holding", 0, "float32"),
        point("v_cdab", "holding", 2, "float32", word_order="little"),
        point("v_badc", "holding", 4, "float32", byte_order="little"),
        point("v_dcba", "holding", 6, "float32", word_order="little", byte_order="little"),
        point("i16", "holding", 8, "int16", scale=0.1),
        point("u16", "holding", 9, "uint16", scale=0.01, offset=1),
        point("i32", "holding", 10, "int32", word_order="little"),
        point("e_u32", "holding", 12, "uint32", "Accumulator"),
        point("tap", "holding", 14, "uint16", "Discrete", value_map={1: 10, 2: 20, 3: 30}),
        point("u16_ba", "holding", 15, "uint16", byte_order="little"),
    ] + [point(f"f{i}", "holding", 100 + i, "uint16", scale=0.5) for i in range(10)]
    expect: dict[str, float | int] = {
        "v_abcd": 230.5, "v_cdab": -11.25, "v_badc": 6350.0, "v_dcba": 0.125,
        "i16": -123.4, "u16": 51.0, "i32": -100000, "e_u32": 3_000_000_000, "tap": 20, "u16_ba": 0x1234,
    }
    expect |= {f"f{i}": i * 10 * 0.5 for i in range(10)}
    return pts, expect


def fill(m: ArrayDataModel, k: int = 0) -> None:
    """Write the layout's values as a device with those orders would hold them (plain struct)."""
    f = lambda v: struct.pack(">f", v)  # noqa: E731  ABCD
    m.set_registers("holding", 0, f(230.5))
    m.set_registers("holding", 2, f(-11.25)[2:] + f(-11.25)[:2])  # CDAB
    b = f(6350.0)
    m.set_registers("holding", 4, bytes([b[1], b[0], b[3], b[2]]))  # BADC
    m.set_registers("holding", 6, struct.pack("<f", 0.125))  # DCBA
    m.set_registers("holding", 8, struct.pack(">h", -1234))
    m.set_registers("holding", 9, struct.pack(">H", 5000))
    i32 = struct.pack(">i", -100000)
    m.set_registers("holding", 10, i32[2:] + i32[:2])
    m.set_registers("holding", 12, struct.pack(">I", 3_000_000_000))
    m.set_registers("holding", 14, struct.pack(">H", 2))
    m.set_registers("holding", 15, struct.pack("<H", 0x1234))
    for i in range(10):
        m.set_register("holding", 100 + i, i * 10 + k)


@pytest.fixture
async def meter():
    m = ArrayDataModel(holding=200, input=10, coil=20, discrete_input=20)
    fill(m)
    s = ModbusServer(m, unit_id=1)
    await s.start()
    yield m, s
    await asyncio.wait_for(s.stop(), WAIT)


def keys(pts) -> list[str]:
    return [f"pq1/{p.name}" for p in pts]


async def test_values_quality_timestamps_and_coalescing(meter) -> None:
    m, srv = meter
    pts, expect = layout()
    t0 = time.time()
    async with running(device(pts, srv.port, poll=POLL)) as (s, c):
        assert len(s.blocks) == 2
        await c.until(lambda: s.state.polls >= 4, what="4 polls")
    t1 = time.time()
    polls = s.state.polls
    for p in pts:
        r = c.latest[f"pq1/{p.name}"]
        assert r.value == pytest.approx(expect[p.name], rel=1e-9), p.name
        assert r.quality == GOOD and r.address == f"holding:{p.address}"
        assert t0 < r.timestamp < t1
    assert type(c.latest["pq1/tap"].value) is int and type(c.latest["pq1/e_u32"].value) is int
    assert type(c.latest["pq1/f3"].value) is float
    # 20 points per poll, read in 2 requests: 2 distinct reply times per poll
    first = c.readings[:20]
    assert sorted(r.key for r in first) == sorted(keys(pts))
    stamps = sorted({r.timestamp for r in first})
    assert len(stamps) == 2 and stamps[1] - stamps[0] < 0.3
    # the server (an independent peer) saw 2 requests per poll
    assert 2 * polls <= srv.stats.requests <= 2 * polls + 2
    assert s.counters["requests"] == srv.stats.requests and s.counters["replies"] >= 2 * polls
    # absolute schedule at the device's poll interval
    starts = [c.readings[20 * k].timestamp for k in range(polls)]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0.5 * POLL < g < 2 * POLL for g in gaps), gaps
    assert s.stats()["exceptions"] == {} and s.counters["timeouts"] == 0


async def test_bit_tables_input_registers_and_unit_id() -> None:
    m = ArrayDataModel(coil=20, discrete_input=20, input=10)
    m.set_bits("coil", 3, [1])
    m.set_bits("discrete_input", 17, [1])
    m.set_register("input", 4, 4242)
    pts = [
        point("c3", "coil", 3, "bool", "Discrete"),
        point("c4", "coil", 4, "bool", "Discrete"),
        point("cb", "discrete_input", 17, "bool", "Discrete", value_map={0: 1, 1: 2}),
        point("ir", "input", 4, scale=0.001),
    ]
    async with ModbusServer(m, unit_id=7) as srv:
        async with running(device(pts, srv.port, poll=POLL, unit_id=7)) as (s, c):
            await c.until(lambda: c.all_quality(keys(pts), GOOD) and s.state.polls >= 1, what="first poll")
            sock = s._client.ctx.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert srv.stats.ignored_unit == 0
    assert [c.latest[k].value for k in keys(pts)] == [1, 0, 2, pytest.approx(4.242)]
    assert [type(c.latest[k].value) for k in keys(pts)[:3]] == [int, int, int]


async def test_comms_loss_marks_everything_and_recovery_clears_it(meter) -> None:
    m, srv = meter
    pts, expect = layout()
    ks = keys(pts)
    async with running(device(pts, srv.port, poll=POLL)) as (s, c):
        await c.until(lambda: c.all_quality(ks, GOOD), what="GOOD")
        good = dict(c.latest)
        port = srv.port
        stopped = time.monotonic()
        await srv.stop()
        lost_at = await c.until(lambda: c.all_quality(ks, LOST), what="INVALID|OLD_DATA|FAILURE")
        assert lost_at - stopped <= 2 * POLL
        for k in ks:  # last value and its source time kept
            assert (c.latest[k].value, c.latest[k].timestamp) == (good[k].value, good[k].timestamp)
        assert not s.connected and s.state.failures >= 1
        fill(m, k=1)  # the device's values move on while it is away
        back = ModbusServer(m, port=port, unit_id=1)
        await back.start()
        try:
            await c.until(lambda: c.all_quality(ks, GOOD), what="GOOD again")
            assert c.latest["pq1/f2"].value == (20 + 1) * 0.5
            assert c.latest["pq1/f2"].timestamp > good["pq1/f2"].timestamp
            assert s.connected and s.state.reconnects == 1 and s.counters["connects"] == 2
        finally:
            await back.stop()


async def test_silent_device_times_out_then_recovers(meter) -> None:
    m, srv = meter
    pts, _ = layout()
    ks = keys(pts)
    async with running(device(pts, srv.port, poll=POLL, timeout=0.25)) as (s, c):
        await c.until(lambda: c.all_quality(ks, GOOD), what="GOOD")
        muted = time.monotonic()
        srv.faults = ModbusFaults(silent=True)
        lost_at = await c.until(lambda: c.all_quality(ks, LOST), what="INVALID on timeout")
        assert lost_at - muted <= POLL + 0.25 + 0.15
        assert s.counters["timeouts"] >= 1 and "timeout" in s.state.last_error
        srv.faults = ModbusFaults()
        await c.until(lambda: c.all_quality(ks, GOOD), what="GOOD again")
    assert srv.stats.silenced >= s.counters["timeouts"] >= 1


async def test_exception_replies_mark_only_their_block_and_log_once(meter, caplog) -> None:
    m, srv = meter
    pts, _ = layout()
    ks = keys(pts)
    block_a, block_b = ks[:10], ks[10:]
    caplog.set_level(logging.INFO, logger="gateway.southbound.modbus.driver")
    async with running(device(pts, srv.port, poll=POLL)) as (s, c):
        await c.until(lambda: c.all_quality(ks, GOOD), what="GOOD")
        before = dict(c.latest)
        srv.faults = ModbusFaults(exceptions=(ForcedException(code=2, function=3, start=100, end=109),))
        bad_ref = int(Q.INVALID | Q.BAD_REFERENCE)
        await c.until(lambda: c.all_quality(block_b, bad_ref), what="BAD_REFERENCE")
        polls = s.state.polls
        await c.until(lambda: s.state.polls >= polls + 3, what="3 more polls")
        assert c.all_quality(block_a, GOOD) and s.connected and s.counters["connects"] == 1
        for k in block_b:  # the last good value stays, with its own time
            assert (c.latest[k].value, c.latest[k].timestamp) == (before[k].value, before[k].timestamp)
        assert s.counters["exceptions"][2] >= 4 and srv.stats.exceptions[2] == s.counters["exceptions"][2]
        srv.faults = ModbusFaults(exceptions=(ForcedException(code=4, function=3, start=100, end=109),))
        await c.until(lambda: c.all_quality(block_b, int(Q.INVALID | Q.FAILURE)), what="FAILURE on 04")
        srv.faults = ModbusFaults()
        await c.until(lambda: c.all_quality(ks, GOOD), what="GOOD again")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("exception 02" in w for w in warnings) == 1, warnings
    assert sum("exception 04" in w for w in warnings) == 1, warnings
    assert any("holding:100..109 reads again" in r.getMessage() for r in caplog.records)


async def test_nan_float_is_invalid_overflow_others_stay_good(meter) -> None:
    m, srv = meter
    pts, expect = layout()
    m.set_registers("holding", 0, bytes.fromhex("7FC00000"))  # NaN in v_abcd
    m.set_registers("holding", 2, bytes.fromhex("0000FF80"))  # -Inf in v_cdab (word-swapped)
    async with running(device(pts, srv.port, poll=POLL)) as (s, c):
        await c.until(lambda: s.state.polls >= 2, what="2 polls")
    for k in ("pq1/v_abcd", "pq1/v_cdab"):
        assert (c.latest[k].value, c.latest[k].quality) == (None, int(Q.INVALID | Q.OVERFLOW))
    assert c.latest["pq1/v_badc"].value == 6350.0 and c.latest["pq1/v_badc"].quality == GOOD
    assert s.counters["overflow"] >= 4


async def test_short_reply_is_inconsistent_and_counted() -> None:
    server, port = await start_short_replier(short=1)
    pts = [point(f"r{i}", "holding", i) for i in range(4)] + [point("in", "input", 0)]
    try:
        async with running(device(pts, port, poll=POLL)) as (s, c):
            await c.until(lambda: s.counters["short_replies"] >= 4, what="4 short replies")
            assert c.all_quality(keys(pts), int(Q.INVALID | Q.INCONSISTENT))
            assert all(c.latest[k].value is None for k in keys(pts))
            assert s.connected and s.counters["connects"] == 1  # a block fault, not a link fault
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)


async def test_wrong_unit_id_is_ignored_by_the_device_so_the_gateway_times_out() -> None:
    m = ArrayDataModel(holding=4)
    pts = [point("a", "holding", 0)]
    async with ModbusServer(m, unit_id=7) as srv:
        async with running(device(pts, srv.port, poll=POLL, timeout=0.2, unit_id=9)) as (s, c):
            await c.until(lambda: s.counters["timeouts"] >= 1 and c.all_quality(["pq1/a"], LOST), what="timeout")
        assert srv.stats.ignored_unit >= 1 and srv.stats.responses == 0


async def test_device_down_at_start_then_up() -> None:
    port = free_port()
    pts = [point("a", "holding", 1, scale=2)]
    async with running(device(pts, port, poll=POLL)) as (s, c):
        await c.until(lambda: "pq1/a" in c.latest, what="first reading")
        assert (c.latest["pq1/a"].value, c.latest["pq1/a"].quality) == (None, LOST)
        assert s.counters["connect_failures"] >= 1 and f"cannot open a TCP connection to 127.0.0.1:{port}" in s.state.last_error
        m = ArrayDataModel(holding=4)
        m.set_register("holding", 1, 21)
        async with ModbusServer(m, port=port) as srv:
            await c.until(lambda: c.all_quality(["pq1/a"], GOOD), what="GOOD")
            assert c.latest["pq1/a"].value == 42.0 and srv.stats.requests >= 1


async def test_one_cancel_always_stops_the_driver(meter) -> None:
    """A cancel that meets a reply must not be lost (asyncio.wait_for on 3.11 loses it:
    a stopped gateway would keep polling and never shut down)."""
    m, srv = meter
    rng = random.Random(7)
    for _ in range(60):
        async with running(device([point("a", "holding", 0)], srv.port, poll=0.001)) as (s, c):
            await asyncio.sleep(rng.uniform(0.005, 0.03))
            assert c.task is not None
            c.task.cancel()
            done, _ = await asyncio.wait([c.task], timeout=1.0)
            assert done, f"driver still running 1 s after a cancel (polls={s.state.polls})"
