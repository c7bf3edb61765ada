"""Operating XCBR1.Pos on an emulated IED: SBO enhanced, direct, and the refusals with AddCause."""

import asyncio

from gateway.southbound.iec61850 import MmsSource
from tests.iec61850.conftest import fast_backoff, running

CLOSED, OPEN = 2, 1


async def _ready(src, sink):
    await sink.wait(lambda: src.connected and sink.of("Pos"), what="connected + GI")


async def test_sbo_enhanced_operate_moves_the_breaker(ied):
    dev = ied(breaker_mode="sbo")
    src = MmsSource(dev.device, fast_backoff())
    async with running(src) as sink:
        await _ready(src, sink)
        for target in [CLOSED, OPEN] * 10:  # 20 select-with-value + operate cycles on one association
            res = await src.operate("Pos", target, "sbo")
            assert res.ok, res
            r = await sink.wait(lambda: [x for x in sink.of("Pos") if x.event and x.value == target], what=f"Pos={target}")
            assert r[-1].quality == 0
            sink.readings.clear()
        assert dev.call(op="stats")["controls"] == 20


async def test_operate_without_select_is_refused(ied):
    dev = ied(breaker_mode="sbo")
    src = MmsSource(dev.device, fast_backoff())
    async with running(src) as sink:
        await _ready(src, sink)
        res = await src.operate("Pos", CLOSED, "direct")
        assert not res.ok
        assert res.add_cause == "Object-not-selected" and res.add_cause_code == 18
        assert "operate refused" in (res.error or "")
        await asyncio.sleep(0.3)
        assert not [x for x in sink.of("Pos") if x.event]  # the breaker did not move
        assert dev.call(op="stats")["controls"] == 0


async def test_direct_operate_and_firmware_refusal(ied):
    dev = ied(breaker_mode="direct")
    src = MmsSource(dev.device, fast_backoff())
    async with running(src) as sink:
        await _ready(src, sink)
        res = await src.operate("Pos", CLOSED, "direct")
        assert res.ok, res
        await sink.wait(lambda: [x for x in sink.of("Pos") if x.event and x.value == CLOSED], what="closed")
        res = await src.operate("Pos", OPEN, "sbo")  # no SBOw on a direct-operate object
        assert not res.ok and "select refused" in (res.error or "")
    # the firmware says no: with enhanced security the negative CommandTermination carries the AddCause
    # (direct-normal has no channel for a refusal after acceptance: IEC 61850-7-2 normal security)
    blocked = ied(breaker_mode="sbo", refuse=True)
    src2 = MmsSource(blocked.device, fast_backoff())
    async with running(src2) as sink2:
        await _ready(src2, sink2)
        res = await src2.operate("Pos", CLOSED, "sbo")
        assert not res.ok and res.add_cause == "Blocked-by-process", res
        assert res.error == "command terminated negatively"
        await asyncio.sleep(0.2)
        assert not [x for x in sink2.of("Pos") if x.event]  # position unchanged
        assert blocked.call(op="stats")["controls"] == 1


async def test_operate_when_not_connected_and_unknown_point():
    from tests.iec61850.support import ied_device

    src = MmsSource(ied_device())
    res = await src.operate("Pos", CLOSED, "sbo")
    assert not res.ok and res.error == "IED not connected"
    res = await src.operate("Nope", 1)
    assert not res.ok and "no point 'Nope'" in res.error
