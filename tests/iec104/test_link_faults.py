"""The 104-specific faults of the emulated RTU (devices/iec104/proxy.py, faults.py) against the gateway's
controlling station, run directly (fault specs as the scenario engine and the live API hand them over):
refused STARTDT, withheld acknowledgements, delayed frames, time-tag jumps, and failover to a backup RTU."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devices.iec104.emulated import apply_faults
from devices.iec104.outstation import Iec104Rtu
from devices.scenario.faults import FAULT
from gateway.pipeline import Backoff
from gateway.site.quality import COMMS_LOST, Q
from gateway.southbound.iec104 import Driver
from tests.iec104.support import device
from tests.support.readings import running

T0 = 1_790_000_000.25
#: short APCI timers so that t1 expiry is seen within seconds (t2 < t1, w <= 2k/3)
FAST = {"common_address": 7, "t1": 2.5, "t2": 1.0, "t3": 5.0, "gi_interval": 600, "clock_sync": False}


def faults(*specs: dict[str, Any]) -> list[Any]:
    return [FAULT.validate_python(s) for s in specs]


def feed(rtu: Iec104Rtu, p: float = 1234.5, ts: float = T0) -> None:
    rtu.update("P", p, 0, ts)
    rtu.update("Ia", 180.3, 0, ts)
    rtu.update("Pos", 2, 0, ts)
    rtu.update("Trip", 0, 0, ts)
    rtu.update("Tap", 5, 0, ts)
    rtu.update("E", 98765, 0, ts)


@pytest.fixture
def rtu():
    r = Iec104Rtu(device(timeout=1.0, iec104=FAST))
    r.start()
    feed(r)
    yield r
    r.stop()


def driver_of(rtu: Iec104Rtu, **opts: Any) -> Driver:
    dev = device(timeout=1.5, port=rtu.port, iec104={**FAST, **opts})
    return Driver(dev, backoff=Backoff(initial=0.2, maximum=0.5))


async def good(sink, src, value: float = 1234.5) -> None:
    await sink.wait(lambda: src.connected and (x := sink.latest("P")) and x.value == value and x.quality == 0,
                    20, f"P = {value} GOOD")


async def test_refused_startdt_ends_each_attempt_at_t1_marks_invalid_and_recovers(rtu):
    src = driver_of(rtu)
    async with running(src) as sink:
        await good(sink, src)
        apply_faults(rtu, faults({"kind": "startdt_refused"}))
        lost = await sink.wait(lambda: (x := sink.latest("P")) and x.quality & Q.FAILURE and x, 15, "P marked lost")
        assert (lost.value, lost.quality, lost.timestamp) == (1234.5, int(COMMS_LOST), T0)
        await sink.wait(lambda: src.status_counters()["startdt_unconfirmed"] >= 2, 20, "two attempts without STARTDT con")
        assert not src.connected
        assert "never confirmed STARTDT within 2.5 s (t1)" in (src.state.last_error or "")
        assert rtu.stats["link"]["startdt_withheld"] >= 2
        assert all(r.quality & Q.FAILURE for r in sink.of("P")[sink.of("P").index(lost):])  # nothing GOOD meanwhile
        failures = src.state.failures
        apply_faults(rtu, [])
        await good(sink, src)
        assert src.state.reconnects >= 1 and src.state.failures >= failures


async def test_withheld_acknowledgements_let_the_masters_t1_expire(rtu):
    src = driver_of(rtu, gi_interval=1.0)  # a GI every second: I-frames the RTU should acknowledge
    async with running(src) as sink:
        await good(sink, src)
        failures = src.state.failures
        t = time.monotonic()
        apply_faults(rtu, faults({"kind": "ack_loss"}))
        await sink.wait(lambda: (x := sink.latest("P")) and x.quality & Q.FAILURE, 20, "P marked lost at t1")
        assert time.monotonic() - t >= FAST["t1"]  # not before t1 (no upper bound on a loaded machine)
        assert src.state.failures > failures and src.status_counters()["t1_expired"] >= 1
        assert rtu.stats["link"]["acks_withheld"] >= 1
        apply_faults(rtu, [])
        await good(sink, src)
        failures = src.state.failures
        t = time.monotonic()
        await sink.wait(lambda: time.monotonic() - t > 2 * FAST["t1"], 10, "2 × t1 with acknowledgements")
        assert src.connected and src.state.failures == failures  # acknowledged again: the link holds


async def test_a_delay_holds_spontaneous_data_back_and_a_delay_beyond_the_timeout_drops_the_link(rtu):
    src = driver_of(rtu, gi_interval=1.0)  # a GI every second: the RTU has confirmations to hold back
    async with running(src) as sink:
        await good(sink, src)
        apply_faults(rtu, faults({"kind": "delay", "ms": 300}))
        t = time.time()
        rtu.update("P", 1300.0, 0, t)
        # the spontaneous event itself (the periodic GI's answer may carry the new value first, or just after)
        r = await sink.wait(lambda: next((x for x in sink.of("P") if x.value == 1300.0 and x.event), None), 10,
                            "the delayed change")
        assert r.event and r.quality == 0 and r.timestamp == pytest.approx(t, abs=0.001)
        arrived = time.time()
        assert arrived - t >= 0.3  # held back at least the delay (no upper bound on a loaded machine)
        assert rtu.stats["link"]["frames_delayed"] >= 1 and src.connected
        apply_faults(rtu, faults({"kind": "delay", "ms": 4000}))  # > t1 and the timeout: GI confirmation too late
        await sink.wait(lambda: (x := sink.latest("P")) and x.quality & Q.FAILURE, 20, "P marked lost")
        assert src.status_counters()["t1_expired"] >= 1 or src.status_counters()["gi_failed"] >= 1
        apply_faults(rtu, [])
        await good(sink, src, 1300.0)


@pytest.mark.parametrize("jump", [3600.0, -3600.0])
async def test_a_time_tag_jump_is_published_with_the_receive_time_and_flagged(rtu, jump):
    src = driver_of(rtu)
    async with running(src) as sink:
        await good(sink, src)
        t = time.time()
        rtu.update("P", 1250.0, 0, t)  # a sane event first: the newest believed time of P is now
        ok = await sink.wait(lambda: (x := sink.latest("P")) and x.value == 1250.0 and x, 10, "a change")
        assert (ok.quality, ok.timestamp) == (0, pytest.approx(t, abs=0.001))
        apply_faults(rtu, faults({"kind": "time_jump", "seconds": jump}))
        before = time.time()
        rtu.update("P", 1260.0, 0, before)
        r = await sink.wait(lambda: (x := sink.latest("P")) and x.value == 1260.0 and x, 10, "the jumped change")
        assert r.quality == int(Q.QUESTIONABLE | Q.INCONSISTENT)
        assert before <= r.timestamp <= time.time()  # the receive time, not the RTU's (off by an hour)
        assert src.status_counters()["time_tags_rejected"] == 1 and src.connected
        apply_faults(rtu, [])
        t2 = time.time()
        rtu.update("P", 1270.0, 0, t2)
        r = await sink.wait(lambda: (x := sink.latest("P")) and x.value == 1270.0 and x, 10, "a change after the clear")
        assert (r.quality, r.timestamp) == (0, pytest.approx(t2, abs=0.001))  # the RTU's own time tag again


async def test_failover_to_the_backup_rtu_and_back():
    primary = Iec104Rtu(device(timeout=1.0, iec104=FAST))
    backup = Iec104Rtu(device(timeout=1.0, iec104=FAST))
    for r, p in ((primary, 1234.5), (backup, 4321.0)):
        r.start()
        feed(r, p)
    try:
        src = driver_of(primary, backup={"host": "127.0.0.1", "port": backup.port})
        async with running(src) as sink:
            await good(sink, src, 1234.5)
            assert src.endpoint == ("127.0.0.1", primary.port) and src.status_counters()["on_backup"] == 0
            primary.stop()
            await sink.wait(lambda: (x := sink.latest("P")) and x.quality & Q.FAILURE, 15, "primary lost")
            await good(sink, src, 4321.0)  # the backup's GI
            c = src.status_counters()
            assert src.endpoint == ("127.0.0.1", backup.port) and (c["on_backup"], c["failovers"]) == (1, 1)
            assert backup.stats["link"]["connections"] >= 1
            primary = Iec104Rtu(device(timeout=1.0, port=primary.port, iec104=FAST))
            primary.start()
            feed(primary, 1111.0)
            backup.stop()
            await good(sink, src, 1111.0)
            assert src.endpoint == ("127.0.0.1", primary.port) and src.status_counters()["on_backup"] == 0
    finally:
        primary.stop()
        backup.stop()
