"""Our emulated outstation, polled by the independent yadnp3 (opendnp3) master."""

from __future__ import annotations

import asyncio
import time

import pytest

od = pytest.importorskip("opendnp3", reason="yadnp3, the independent DNP3 peer, has wheels for x86_64 only")

from gateway.site.quality import Q
from tests.dnp3.conftest import outstation
from tests.dnp3.peer import YMaster, device

POINTS = [
    {"name": "P", "group": "analog", "index": 0, "scale": 0.1},
    {"name": "I", "group": "analog", "index": 300, "event_class": 2},
    {"name": "trip", "group": "binary", "index": 1},
    {"name": "CB", "group": "double_binary", "index": 0, "command": {"enabled": True}},
    {"name": "E", "group": "counter", "index": 0},
    {"name": "relay", "group": "binary_output", "index": 2},
    {"name": "sp", "group": "analog_output", "index": 1},
]


def latest(items, kind, index, event=None):
    found = [i for i in items if i[0] == kind and i[1] == index and (event is None or i[5] == event)]
    return found[-1] if found else None


async def test_integrity_values_and_flags() -> None:
    async with outstation(device(POINTS)) as os_:
        os_.update("P", 1234.5, 0, time.time())
        os_.update("I", 87.0, int(Q.INVALID | Q.FAILURE | Q.OLD_DATA), time.time())
        os_.update("trip", True, int(Q.OSCILLATORY), time.time())
        os_.update("CB", 2, 0, time.time())
        os_.update("E", 1_000_000, 0, time.time())
        m = YMaster(os_.port, asyncio.get_running_loop())
        try:
            items = await m.data.wait_for(lambda s: latest(s, "analog_output", 1, False) is not None)
            p = latest(items, "analog", 0, False)
            assert p[2] == 12345.0 and p[3] == 0x01  # ONLINE
            i = latest(items, "analog", 300, False)
            assert i[2] == 87.0 and i[3] & 0x04 and not i[3] & 0x01  # COMM_LOST, not ONLINE
            t = latest(items, "binary", 1, False)
            assert t[2] is True and t[3] & 0x7F == 0x21  # ONLINE | CHATTER_FILTER (bit 7 is the state)
            assert latest(items, "double_binary", 0, False)[2] == 2  # DETERMINED_ON
            assert latest(items, "counter", 0, False)[2] == 1_000_000
            # never updated by the firmware: RESTART, not ONLINE
            assert latest(items, "binary_output", 2, False)[3] == 0x02
        finally:
            m.close()


async def test_unsolicited_events_carry_source_time() -> None:
    async with outstation(device(POINTS)) as os_:
        m = YMaster(os_.port, asyncio.get_running_loop())
        try:
            await m.data.wait_for(lambda s: latest(s, "analog", 0, False) is not None)
            await asyncio.sleep(0.3)  # startup: enable unsolicited
            t0 = 1_700_000_000.125
            os_.update("P", 50.0, 0, t0)  # class 1, g32v7
            os_.update("I", 3.5, 0, t0 + 1)  # class 2
            os_.update("CB", 1, 0, t0 + 2)  # g4v2
            items = await m.data.wait_for(lambda s: latest(s, "double_binary", 0, True) is not None, 3.0)
            ev = latest(items, "analog", 0, True)
            assert ev[2] == 500.0 and ev[4] == 1_700_000_000_125
            assert latest(items, "analog", 300, True)[4] == 1_700_000_001_125
            cb = latest(items, "double_binary", 0, True)
            assert cb[2] == 1 and cb[4] == 1_700_000_002_125
            await asyncio.sleep(0.2)
            st = os_.stats
            assert st["unsol_sent"] >= 2
            assert st["class1_confirmed"] == st["class1_queued"] == 2 and st["class2_confirmed"] == 1
            assert st["events_buffered"] == 0 and st["malformed_frames"] == 0
        finally:
            m.close()


async def test_class_poll_without_unsolicited() -> None:
    dev = device(POINTS, unsolicited=False)
    async with outstation(dev) as os_:
        m = YMaster(os_.port, asyncio.get_running_loop())
        try:
            await m.data.wait_for(lambda s: latest(s, "analog", 0, False) is not None)
            os_.update("P", 10.0, 0, 1_700_000_000.0)
            os_.update("P", 20.0, 0, 1_700_000_000.5)
            await asyncio.sleep(0.3)
            assert latest(m.data.snapshot(), "analog", 0, True) is None  # nothing unsolicited
            assert os_.stats["unsol_sent"] == 0
            m.scan_classes(1, 2, 3)
            items = await m.data.wait_for(lambda s: len([i for i in s if i[0] == "analog" and i[5]]) >= 2)
            evs = [i for i in items if i[0] == "analog" and i[5]]
            assert [(e[2], e[4]) for e in evs] == [(100.0, 1_700_000_000_000), (200.0, 1_700_000_000_500)]
            await asyncio.sleep(0.2)
            assert os_.stats["class1_confirmed"] == 2 and os_.stats["events_buffered"] == 0
        finally:
            m.close()


async def test_multi_fragment_integrity_2000_points() -> None:
    pts = [{"name": f"a{i}", "group": "analog", "index": i, "event_class": 0} for i in range(2000)]
    pts += [{"name": f"b{i}", "group": "binary", "index": i, "event_class": 0} for i in range(200)]
    async with outstation(device(pts)) as os_:
        for i in range(2000):
            os_.update(f"a{i}", float(i) * 1.5, 0, time.time())
        for i in range(200):
            os_.update(f"b{i}", i % 3 == 0, 0, time.time())
        m = YMaster(os_.port, asyncio.get_running_loop())
        try:
            items = await m.data.wait_for(lambda s: len({i[1] for i in s if i[0] == "analog"}) >= 2000, 10.0)
            vals = {i[1]: i[2] for i in items if i[0] == "analog"}
            assert all(vals[i] == i * 1.5 for i in range(2000))
            await m.data.wait_for(lambda s: len({i[1] for i in s if i[0] == "binary"}) >= 200)
            bins = {i[1]: i[2] for i in m.data.snapshot() if i[0] == "binary"}
            assert all(bins[i] == (i % 3 == 0) for i in range(200))
            assert os_.stats["responses"] >= 8  # 2000 × g30v5 (5 octets) does not fit one 2048-octet fragment
        finally:
            m.close()


async def test_crob_direct_and_sbo_from_yadnp3() -> None:
    applied: list[tuple[str, object]] = []

    def on_command(name: str, value: object) -> bool:
        applied.append((name, value))
        os_.update(name, value, 0, time.time())  # what the emulator does: apply to firmware, report back
        return True

    async with outstation(device(POINTS), on_command=on_command) as os_:
        m = YMaster(os_.port, asyncio.get_running_loop())
        try:
            await m.data.wait_for(lambda s: latest(s, "analog", 0, False) is not None)
            summary, pts = await m.command("DirectOperate", od.ControlRelayOutputBlock(od.OperationType.LATCH_ON), 2)
            assert summary == od.TaskCompletion.SUCCESS
            assert pts == [(2, od.CommandPointState.SUCCESS, od.CommandStatus.SUCCESS)]
            assert applied[-1] == ("relay", True)
            crob = od.ControlRelayOutputBlock(od.OperationType.PULSE_ON, od.TripCloseCode.CLOSE)
            summary, pts = await m.command("SelectAndOperate", crob, 0)
            assert pts == [(0, od.CommandPointState.SUCCESS, od.CommandStatus.SUCCESS)]
            assert applied[-1] == ("CB", 2)
            # the breaker operate changes the double-bit input and raises an event
            items = await m.data.wait_for(lambda s: (latest(s, "double_binary", 0, True) or (0, 0, 0))[2] == 2)
            assert latest(items, "double_binary", 0, True)[2] == 2
            summary, pts = await m.command("DirectOperate", od.AnalogOutputFloat32(42.5), 1)
            assert summary == od.TaskCompletion.SUCCESS and applied[-1] == ("sp", 42.5)
            # no point at that index: the per-point status says so
            summary, pts = await m.command("DirectOperate", od.ControlRelayOutputBlock(od.OperationType.LATCH_ON), 77)
            assert [(p[0], p[2]) for p in pts] == [(77, od.CommandStatus.NOT_SUPPORTED)]
            assert applied[-1] == ("sp", 42.5)
        finally:
            m.close()


async def test_buffer_overflow_counted_and_reported() -> None:
    dev = device(POINTS, event_buffer={"class1": 5, "class2": 5, "class3": 5})
    async with outstation(dev) as os_:
        for k in range(12):  # no master yet: nothing can be confirmed
            os_.update("P", float(k), 0, 1_700_000_000 + k)
        st = os_.stats
        assert st["class1_queued"] == 12 and st["class1_overflowed"] == 7 and st["events_buffered"] == 5
        m = YMaster(os_.port, asyncio.get_running_loop())
        try:
            items = await m.data.wait_for(lambda s: len([i for i in s if i[0] == "analog" and i[5]]) >= 5)
            evs = [i[2] for i in items if i[0] == "analog" and i[1] == 0 and i[5]]
            assert evs[:5] == [70.0, 80.0, 90.0, 100.0, 110.0]  # the newest five survive, oldest dropped
            await asyncio.sleep(0.3)
            assert os_.stats["events_buffered"] == 0 and not os_.events.overflow
        finally:
            m.close()
