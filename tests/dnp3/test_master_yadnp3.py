"""Our master driver against the independent yadnp3 (opendnp3) outstation."""

from __future__ import annotations

import asyncio

import pytest

od = pytest.importorskip("opendnp3", reason="yadnp3, the independent DNP3 peer, has wheels for x86_64 only")

from gateway.site.quality import Q
from tests.dnp3.conftest import source, until
from tests.dnp3.peer import YOutstation, device, free_port

POINTS = [
    {"name": "P", "group": "analog", "index": 0, "scale": 0.5, "offset": 1.0},
    {"name": "trip", "group": "binary", "index": 1},
    {"name": "CB", "group": "double_binary", "index": 0, "command": {"enabled": True}},
    {"name": "CB2", "group": "binary", "index": 2, "value_map": {0: 1, 1: 2}},
    {"name": "E", "group": "counter", "index": 3},
    {"name": "relay", "group": "binary_output", "index": 2},
    {"name": "far", "group": "binary_output", "index": 300},
    {"name": "sp", "group": "analog_output", "index": 1},
]


def y_outstation(size: int = 10, **kw) -> tuple[YOutstation, int]:
    port = free_port()
    return YOutstation(port, size, **kw), port


async def test_integrity_values_quality_and_unsolicited() -> None:
    y, port = y_outstation()
    try:
        y.apply((od.Analog(42.0, od.Flags(0x01 | 0x20)), 0), (od.Binary(True), 1), (od.Binary(True), 2),
                (od.DoubleBitBinary(od.DoubleBit.DETERMINED_ON), 0), (od.Counter(77), 3))
        async with source(device(POINTS), port) as (src, got):
            await got.wait_for(lambda rs: rs and any(r.key == "rtu1/E" for r in rs))
            p = got.of("rtu1/P")[-1]
            assert p.value == 22.0 and p.quality == int(Q.OVERFLOW | Q.OUT_OF_RANGE) and p.address == "30:0"
            assert got.of("rtu1/trip")[-1].value is True and got.of("rtu1/trip")[-1].quality == 0
            assert got.of("rtu1/CB")[-1].value == 2  # closed
            assert got.of("rtu1/CB2")[-1].value == 2  # value_map on a single-bit position
            assert got.of("rtu1/E")[-1].value == 77.0
            await until(lambda: not src.iin & 0x0080)  # DEVICE_RESTART cleared by our g80v1 write
            assert src.stats["restarts_seen"] == 1
            assert src.unmapped.count > 0  # yadnp3 serves 10 of each type; the rest is counted, not published
            await asyncio.sleep(0.3)  # enable unsolicited done
            n = len(got.items)
            y.apply((od.Analog(100.0), 0))
            await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.event and r.value == 51.0 for r in rs[n:]), 2.0)
            assert src.stats["unsolicited"] >= 2 and src.stats["event_polls"] == 0
            q = y.apply((od.Analog(5.0, od.Flags(0x00)), 0))  # offline → INVALID
            ev = await got.wait_for(lambda rs: rs[-1].key == "rtu1/P" and rs[-1].value == 3.5, 2.0)
            assert ev[-1].quality & 0x3 == int(Q.INVALID)
    finally:
        y.close()


async def test_class_polls_when_unsolicited_off() -> None:
    y, port = y_outstation(unsol=False)
    try:
        dev = device(POINTS, unsolicited=False, event_poll_interval=0.3)
        async with source(dev, port) as (src, got):
            await got.wait_for(lambda rs: any(r.key == "rtu1/E" for r in rs))
            await until(lambda: src.iin == 0)  # startup done: restart cleared
            polls = src.stats["event_polls"]
            y.apply((od.Analog(10.0), 0), (od.Counter(5), 3))
            rs = await got.wait_for(lambda rs: any(r.key == "rtu1/E" and r.event for r in rs), 3.0)
            ev = [r for r in rs if r.key == "rtu1/P" and r.event]
            assert ev and ev[-1].value == 6.0
            assert src.stats["event_polls"] > polls and src.stats["unsolicited"] == 0
    finally:
        y.close()


async def test_commands_direct_sbo_analog_and_index_above_255() -> None:
    y, port = y_outstation()
    try:
        async with source(device(POINTS), port) as (src, got):
            await got.wait_for(lambda rs: any(r.key == "rtu1/E" for r in rs))
            r = await src.operate("relay", True, "direct")
            assert r.ok and r.status == 0 and r.name == "SUCCESS"
            r = await src.operate("CB", 1, "sbo")  # trip the breaker
            assert r.ok, r
            r = await src.operate("far", False, "sbo")  # index 300: qualifier 0x28 with a 2-octet count
            assert r.ok, r
            r = await src.operate("sp", 12.5, "direct")  # raw = 12.5 → g41v3
            assert r.ok, r
            await asyncio.sleep(0.1)
            assert y.commands == [
                ("crob", 2, int(od.OperationType.LATCH_ON.value), 0),
                ("crob", 0, int(od.OperationType.PULSE_ON.value), int(od.TripCloseCode.TRIP.value)),
                ("crob", 300, int(od.OperationType.LATCH_OFF.value), 0),
                ("analog", 1, 12.5),
            ]
    finally:
        y.close()


async def test_concurrent_requests_share_one_connection() -> None:
    y, port = y_outstation()
    try:
        async with source(device(POINTS), port) as (src, got):
            await got.wait_for(lambda rs: any(r.key == "rtu1/E" for r in rs))
            results = await asyncio.wait_for(
                asyncio.gather(*[src.operate("relay", k % 2 == 0, "sbo") for k in range(6)], src.event_poll(),
                               src.integrity_poll(), src.event_poll()),
                10,
            )
            assert all(r.ok for r in results[:6])
            assert len(y.commands) == 6 and src.connected and src.state.failures == 0
    finally:
        y.close()


async def test_multi_fragment_2000_points() -> None:
    y, port = y_outstation(size=2000)
    try:
        y.apply(*[(od.Analog(float(i)), i) for i in range(2000)])
        pts = [{"name": f"a{i}", "group": "analog", "index": i} for i in range(2000)]
        async with source(device(pts), port) as (src, got):
            rs = await got.wait_for(lambda rs: len({r.key for r in rs}) >= 2000, 10.0)
            vals = {r.key: r.value for r in rs}
            assert all(vals[f"rtu1/a{i}"] == float(i) for i in range(2000))
            assert src.stats["malformed_fragments"] == 0
    finally:
        y.close()


async def test_reconnect_after_outstation_loss_marks_invalid() -> None:
    y, port = y_outstation()
    y.apply((od.Analog(42.0), 0))
    async with source(device(POINTS), port) as (src, got):
        await got.wait_for(lambda rs: any(r.key == "rtu1/P" for r in rs))
        y.close()
        rs = await got.wait_for(lambda rs: rs[-1].quality & int(Q.INVALID) and rs[-1].quality & int(Q.FAILURE), 5.0)
        lost = got.of("rtu1/P")[-1]
        assert lost.value == 22.0 and lost.quality & int(Q.OLD_DATA)
        y2 = YOutstation(port, 10)
        try:
            y2.apply((od.Analog(60.0), 0))
            await got.wait_for(lambda rs: rs[-1].key.startswith("rtu1/") and any(
                r.key == "rtu1/P" and r.value == 31.0 and r.quality == 0 for r in rs), 8.0)
            assert src.state.reconnects >= 1 and src.connected
        finally:
            y2.close()
