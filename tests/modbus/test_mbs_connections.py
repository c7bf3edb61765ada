"""Connection hygiene of the emulated Modbus device (devices/netguard.py): idle masters do not
lock out a new one, idle connections time out, malformed-frame warnings are rate-limited."""

from __future__ import annotations

import asyncio
import logging
import struct
import time

import pytest

from devices import netguard
from devices.modbus import ArrayDataModel, ModbusServer
from devices.netguard import GuardLimits
from tests.modbus.mbs_raw import Raw, adu, req
from tests.support.wait import poll


def read_hr(addr: int) -> bytes:
    return req(3, "HH", addr, 1)


def hr_resp(v: int) -> bytes:
    return bytes((3, 2)) + struct.pack(">H", v)


async def _until(cond, timeout: float = 10.0) -> bool:  # noqa: ANN001
    return await poll(cond, timeout, 0.02)

async def test_idle_connections_at_the_cap_make_room_for_a_new_master(model: ArrayDataModel) -> None:
    limits = GuardLimits(max_connections=4, idle_timeout=0, evict_idle_after=0.3)
    async with ModbusServer(model, name="feeder", limits=limits) as s:
        idle = [await Raw.open(s.port) for _ in range(4)]
        assert await _until(lambda: s.stats.connections_active == 4)
        await asyncio.sleep(0.4)
        fresh = await Raw.open(s.port)
        assert await fresh.call(read_hr(3)) == hr_resp(1003)
        assert await idle[0].closed()  # the oldest idle one made room
        assert s.guard.counters.evicted == 1 and s.guard.counters.refused == 0
        assert s.stats.connections_active == 4
        for c in idle[1:]:
            assert await c.call(read_hr(1)) == hr_resp(1001)
        await asyncio.gather(fresh.close(), *(c.close() for c in idle))


async def test_busy_connections_at_the_cap_refuse_the_newcomer(model: ArrayDataModel) -> None:
    limits = GuardLimits(max_connections=2, idle_timeout=0, evict_idle_after=30)
    async with ModbusServer(model, limits=limits) as s:
        a, b = await Raw.open(s.port), await Raw.open(s.port)
        assert await a.call(read_hr(0)) == hr_resp(1000)
        c = await Raw.open(s.port)
        assert await c.closed()
        assert s.guard.counters.refused == 1 and s.guard.counters.evicted == 0
        assert await b.call(read_hr(2)) == hr_resp(1002)
        await asyncio.gather(a.close(), b.close(), c.close())


async def test_idle_timeout_closes_silent_masters_but_not_polling_ones(model: ArrayDataModel) -> None:
    limits = GuardLimits(max_connections=8, idle_timeout=0.6, evict_idle_after=0.3)
    async with ModbusServer(model, limits=limits) as s:
        silent, polling = await Raw.open(s.port), await Raw.open(s.port)
        for k in range(8):
            assert await polling.call(read_hr(k)) == hr_resp(1000 + k)
            await asyncio.sleep(0.2)
        assert await silent.closed()
        assert await polling.call(read_hr(9)) == hr_resp(1009)
        assert s.guard.counters.idle_closed == 1 and s.stats.connections_active == 1
        await asyncio.gather(silent.close(), polling.close())


async def test_malformed_frame_warnings_are_one_line_per_peer_per_interval(
    model: ArrayDataModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="devices.modbus")
    async with ModbusServer(model) as s:
        for _ in range(50):
            c = await Raw.open(s.port)
            await c.send(adu(read_hr(1), length=300))
            assert await c.closed()
            await c.close()
        assert s.stats.malformed["length"] == 50
        lines = [r for r in caplog.records if "MBAP length" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]


async def test_a_connection_flood_logs_one_refusal_line_per_interval(
    model: ArrayDataModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="devices.netguard")
    limits = GuardLimits(max_connections=2, idle_timeout=0, evict_idle_after=30)
    async with ModbusServer(model, limits=limits) as s:
        keep = [await Raw.open(s.port), await Raw.open(s.port)]
        for _ in range(30):
            c = await Raw.open(s.port)
            assert await c.closed()
            await c.close()
        assert s.guard.counters.refused == 30
        assert len([r for r in caplog.records if "refused connection" in r.getMessage()]) == 1
        await asyncio.gather(*(c.close() for c in keep))


async def test_many_devices_share_one_sweep_task_and_each_closes_only_its_idle_master(
    model: ArrayDataModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 24 devices on one loop, swept by one task in slices of 5 (5 wake-ups a round); each has a silent
    # and a polling master: every silent one is closed after the idle time, no polling one
    monkeypatch.setattr(netguard, "SWEEP_SLICE", 5)
    limits = GuardLimits(max_connections=4, idle_timeout=0.6, evict_idle_after=0.3)
    servers = [ModbusServer(model, name=f"d{i}", limits=limits) for i in range(24)]
    for s in servers:
        await s.start()
    assert servers[0].guard.sweep_interval() == 0.15
    assert len(_sweep_tasks()) == 1
    opened = time.monotonic()
    silent = [await Raw.open(s.port) for s in servers]
    polling = [await Raw.open(s.port) for s in servers]
    closed_at: dict[int, float] = {}

    async def watch(i: int) -> None:
        assert await silent[i].closed(wait=5.0)
        closed_at[i] = time.monotonic()

    watchers = [asyncio.create_task(watch(i)) for i in range(len(servers))]
    for k in range(14):
        for i, p in enumerate(polling):
            assert await p.call(read_hr(k)) == hr_resp(1000 + k), f"device d{i}"
        await asyncio.sleep(0.1)
    await asyncio.gather(*watchers)
    assert min(closed_at.values()) - opened >= 0.6  # never before the idle time
    for i, (s, p) in enumerate(zip(servers, polling)):
        assert s.guard.counters.idle_closed == 1 and s.stats.connections_active == 1, f"device d{i}"
        assert await p.call(read_hr(20)) == hr_resp(1020)
    for s in servers[:-1]:
        await s.stop()
    assert len(_sweep_tasks()) == 1  # the last device is still swept
    await servers[-1].stop()
    await asyncio.sleep(0)
    assert _sweep_tasks() == []  # no device left: the sweep task is gone
    await asyncio.gather(*(c.close() for c in silent + polling))


async def test_a_device_without_idle_timeout_needs_no_sweep_task(model: ArrayDataModel) -> None:
    async with ModbusServer(model, limits=GuardLimits(idle_timeout=0)):
        assert _sweep_tasks() == []


def _sweep_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("guard sweeps") and not t.done()]
