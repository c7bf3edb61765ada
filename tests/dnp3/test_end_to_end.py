"""Our master against our outstation: unsolicited events with source time, lost responses,
outstation restarts, time sync, commands and buffer overflow — nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio

import pytest

from gateway.site.quality import Q
from tests.dnp3.conftest import outstation, source, until
from tests.dnp3.proxy import LossyProxy
from tests.dnp3.sites import device

POINTS = [
    {"name": "P", "group": "analog", "index": 0, "scale": 1000.0, "measurement": {"equipment": "S1/F1/CB1", "type": "ThreePhaseActivePower", "multiplier": "k"}},
    {"name": "Q", "group": "analog", "index": 1, "event_class": 2, "variation": 3},
    {"name": "CB", "group": "double_binary", "index": 0, "command": {"enabled": True, "mode": "sbo"}},
    {"name": "E", "group": "counter", "index": 0, "event_class": 3},
    {"name": "relay", "group": "binary_output", "index": 0},
    {"name": "sp", "group": "analog_output", "index": 0},
]


async def ready(src) -> None:
    """Startup sequence done: connected, integrity polled, restart cleared, time synced."""
    await until(lambda: src.connected and src.stats["integrity_polls"] >= 1 and src.iin & 0x00F0 == 0)


async def test_analog_change_arrives_unsolicited_with_source_time() -> None:
    async with outstation(device(POINTS)) as os_, source(device(POINTS), os_.port) as (src, got):
        await ready(src)
        await until(lambda: src.stats["unsolicited"] >= 1)  # the null unsolicited after connect
        n = len(got.items)
        os_.update("P", 1234.0, 0, 1_700_000_000.25)
        os_.update("Q", -12.0, int(Q.OVERFLOW), 1_700_000_001.5)  # g32v3: 32-bit integer with time
        os_.update("E", 5000, 0, 1_700_000_002.0)
        rs = await got.wait_for(lambda rs: len([r for r in rs[n:] if r.event]) >= 3, 2.0)
        ev = {r.key: r for r in rs[n:] if r.event}
        assert ev["rtu1/P"].value == pytest.approx(1234.0, rel=1e-6) and ev["rtu1/P"].timestamp == 1_700_000_000.25 and ev["rtu1/P"].address == "32:0"
        assert ev["rtu1/Q"].value == -12.0 and ev["rtu1/Q"].timestamp == 1_700_000_001.5
        assert ev["rtu1/Q"].quality == int(Q.OVERFLOW | Q.OUT_OF_RANGE)
        assert ev["rtu1/E"].value == 5000.0 and ev["rtu1/E"].address == "22:0"
        assert src.stats["event_polls"] == 0  # all of it came unsolicited
        await until(lambda: os_.stats["events_buffered"] == 0)
        # time sync on NEED_TIME and DEVICE_RESTART cleared during startup
        assert src.stats["time_syncs"] == 1 and not os_.need_time and not os_.restart_iin


async def lose_next_unsolicited(os_, src, proxy: LossyProxy, value: float, ts: float) -> None:
    """Once unsolicited reporting runs, change P and make the proxy swallow the unsolicited response."""
    await ready(src)
    await until(lambda: src.stats["unsolicited"] >= 1)
    await asyncio.sleep(0.1)
    proxy.drop_next_upstream = 1
    os_.update("P", value, 0, ts)
    await until(lambda: len(proxy.dropped) == 1)


async def test_lost_unsolicited_is_retried_not_lost_not_doubled() -> None:
    async with outstation(device(POINTS), unsol_confirm_timeout=0.3) as os_:
        proxy = await LossyProxy(os_.port).start()
        try:
            async with source(device(POINTS), proxy.port) as (src, got):
                await lose_next_unsolicited(os_, src, proxy, 7000.0, 1_700_000_010.0)
                assert os_.stats["events_buffered"] == 1  # sent but unconfirmed: still held
                await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.event for r in rs), 3.0)
                assert len(proxy.dropped) == 1 and os_.stats["unsol_retried"] >= 1
                await until(lambda: os_.stats["events_buffered"] == 0)
                assert len([r for r in got.of("rtu1/P") if r.event]) == 1
        finally:
            await proxy.close()


async def test_link_lost_before_unsolicited_confirm_resends_on_next_connection() -> None:
    async with outstation(device(POINTS), unsol_confirm_timeout=5.0) as os_:
        proxy = await LossyProxy(os_.port).start()
        try:
            async with source(device(POINTS), proxy.port) as (src, got):
                await lose_next_unsolicited(os_, src, proxy, 9000.0, 1_700_000_015.0)
                proxy.cut()  # the link dies while the event waits for its confirm
                rs = await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.event for r in rs), 5.0)
                ev = [(r.value, r.timestamp) for r in rs if r.key == "rtu1/P" and r.event]
                assert ev == [(9000.0, 1_700_000_015.0)] and src.state.reconnects >= 1
                await until(lambda: os_.stats["events_buffered"] == 0)
        finally:
            await proxy.close()


async def test_lost_solicited_response_keeps_events() -> None:
    dev = device(POINTS, unsolicited=False, event_poll_interval=0.3)
    async with outstation(dev, confirm_timeout=0.5) as os_:
        proxy = await LossyProxy(os_.port).start()
        try:
            async with source(dev, proxy.port) as (src, got):
                await ready(src)
                proxy.drop_next_upstream = 1  # the response to the next event poll vanishes
                os_.update("P", 3000.0, 0, 1_700_000_020.0)
                await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.event for r in rs), 6.0)
                assert len(proxy.dropped) == 1
                ev = [r for r in got.of("rtu1/P") if r.event]
                assert ev[0].value == 3000.0 and ev[0].timestamp == 1_700_000_020.0
                await until(lambda: os_.stats["class1_confirmed"] == os_.stats["class1_queued"])
        finally:
            await proxy.close()


async def test_outstation_restart_marks_invalid_then_recovers_without_losing_events() -> None:
    dev = device(POINTS)
    os1 = await _start(dev)
    port = os1.port
    async with source(dev, port) as (src, got):
        os1.update("P", 1000.0, 0, 1_700_000_030.0)
        await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.value == 1000.0 for r in rs))
        await os1.stop()
        await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.quality & int(Q.FAILURE) for r in rs), 3.0)
        # the restarted RTU (same port) already has events queued before the master is back
        os2 = await _start(dev.model_copy(update={"port": port}))
        try:
            os2.update("P", 2000.0, 0, 1_700_000_031.0)
            os2.update("P", 2500.0, 0, 1_700_000_032.0)
            rs = await got.wait_for(lambda rs: len([r for r in rs if r.key == "rtu1/P" and r.event and r.value >= 2000]) >= 2, 6.0)
            ev = [(r.value, r.timestamp) for r in rs if r.key == "rtu1/P" and r.event and r.value >= 2000]
            assert ev == [(2000.0, 1_700_000_031.0), (2500.0, 1_700_000_032.0)]
            await until(lambda: not os2.restart_iin)
            assert src.stats["restarts_seen"] == 2 and src.state.reconnects >= 1
            assert got.of("rtu1/P")[-1].quality == 0
        finally:
            await os2.stop()


async def test_commands_on_emulated_equipment() -> None:
    async with outstation(device(POINTS)) as os_:
        async with source(device(POINTS), os_.port) as (src, got):
            await ready(src)
            r = await src.operate("CB", 2, "sbo")
            assert (r.ok, r.status, r.name) == (True, 0, "SUCCESS")
            assert os_.value("CB") == 2
            await got.wait_for(lambda rs: any(r.key == "rtu1/CB" and r.event and r.value == 2 for r in rs))
            r = await src.operate("CB", 1, "direct")
            assert r.ok and os_.value("CB") == 1
            r = await src.operate("relay", True)
            assert r.ok and os_.value("relay") is True
            r = await src.operate("sp", 17.25, "sbo")
            assert r.ok and os_.value("sp") == 17.25
        # a point the RTU has not configured as operable (a second master, once the first has gone)
        bad = device(POINTS + [{"name": "ghost", "group": "binary_output", "index": 9}])
        async with source(bad, os_.port) as (src2, _):
            await until(lambda: src2.connected)
            r = await src2.operate("ghost", True)
            assert (r.ok, r.name) == (False, "NOT_SUPPORTED")


async def test_operate_refused_by_emulator_and_not_connected() -> None:
    async with outstation(device(POINTS), on_command=lambda name, value: False) as os_:
        async with source(device(POINTS), os_.port) as (src, _):
            await until(lambda: src.connected)
            r = await src.operate("relay", True, "sbo")
            assert (r.ok, r.status, r.name) == (False, 15, "BLOCKED")
    async with source(device(POINTS), 1) as (src, _):
        r = await src.operate("relay", True)
        assert (r.ok, r.name) == (False, "NOT_CONNECTED")


async def test_overflow_triggers_integrity_and_is_counted() -> None:
    dev = device(POINTS, event_buffer={"class1": 3, "class2": 3, "class3": 3})
    async with outstation(dev) as os_:
        for k in range(10):
            os_.update("P", k * 1000.0, 0, 1_700_000_040 + k)
        async with source(dev, os_.port) as (src, got):
            await got.wait_for(lambda rs: len([r for r in rs if r.key == "rtu1/P" and r.event]) >= 3)
            assert [r.value for r in got.of("rtu1/P") if r.event][:3] == [7000.0, 8000.0, 9000.0]
            assert src.stats["overflows_seen"] == 1 and os_.stats["class1_overflowed"] == 7
            await until(lambda: not os_.events.overflow)
            assert got.of("rtu1/P")[-1].value == 9000.0
            # mid-session: a burst overflows the buffer; the IIN2.3 on the unsolicited response
            # makes the master run an integrity poll, so the latest value is right even though events were lost
            await ready(src)
            polls = src.stats["integrity_polls"]
            for k in range(10):
                os_.update("P", 20_000.0 + k * 1000, 0, 1_700_000_060 + k)
            await until(lambda: src.stats["overflows_seen"] == 2 and src.stats["integrity_polls"] > polls)
            await got.wait_for(lambda rs: rs[-1].key.startswith("rtu1/") and got.of("rtu1/P")[-1].value == 29_000.0)
            assert os_.stats["class1_overflowed"] > 7


async def _start(dev):
    from devices.dnp3.outstation import Dnp3Outstation

    os_ = Dnp3Outstation(dev)
    await os_.start()
    return os_
