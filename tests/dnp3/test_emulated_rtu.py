"""The site's RTU fed by the simulated firmware (configs/primary-substation.yaml), polled by our master:
every point arrives GOOD with the firmware's value, the firmware's changes arrive as timestamped
events, and a breaker operated with SBO changes the firmware's state and comes back as an event."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from devices.dnp3.outstation import Dnp3Outstation
from devices.emulator import Emulator, build_firmware
from gateway.config import Config, load_config
from gateway.protocols.dnp3.flags import from_quality, to_quality
from gateway.protocols.dnp3.points import to_engineering, to_raw
from tests.dnp3.conftest import source
from tests.dnp3.sites import free_port

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"


def rtu_site(port: int) -> Config:
    data = load_config(CONFIG).model_dump(mode="json")
    data["devices"] = [d | {"port": port} for d in data["devices"] if d["protocol"] == "dnp3"][:1]
    for p in data["devices"][0]["points"]:
        p["deadband"] = 0.0  # every firmware change is pushed: these tests check mapping, not report-by-exception
    return Config.model_validate(data)


def wire(p, v):
    """What the firmware value becomes after a trip over the wire (float32 analogs, integer counters)."""
    return to_engineering(p, to_raw(p, v))


async def test_firmware_fed_rtu_values_events_and_breaker_operate() -> None:
    cfg = rtu_site(free_port())
    rtu = cfg.devices[0]
    fw = build_firmware(cfg, seed=1)
    idx = {p.name: fw.index(rtu.name, p.name) for p in rtu.points}
    name_of = {i: n for n, i in idx.items()}

    def on_command(point: str, value: float) -> bool:
        fw.set_state(idx[point], value)  # what the emulator does; the tick reports it back
        return True

    os_ = Dnp3Outstation(rtu.model_copy(update={"port": 0}), on_command=on_command)
    fw.tick(time.time())
    for n, i in idx.items():
        os_.update(n, fw.value(i), fw.quality(i), time.time())
    await os_.start()
    ticking = True

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.05)
            if ticking:
                now = time.time()
                fw.tick(now)
                for i in fw.take_changed():
                    if i in name_of:
                        os_.update(name_of[i], fw.value(i), fw.quality(i), now)

    tick_task = asyncio.create_task(ticker())
    try:
        async with source(rtu, os_.port) as (src, got):
            keys = {f"{rtu.name}/{p.name}" for p in rtu.points}
            t0 = time.time()
            await got.wait_for(lambda rs: keys <= {r.key for r in rs}, 10.0)
            # analog events carry the firmware's tick time
            n = len(got.items)
            evs = await got.wait_for(lambda rs: any(r.event and r.address.startswith("32:") for r in rs[n:]), 10.0)
            ev = next(r for r in evs[n:] if r.event and r.address.startswith("32:"))
            assert t0 - 0.1 < ev.timestamp <= time.time()
            # freeze the firmware; a fresh integrity poll must show exactly its values, all GOOD
            ticking = False
            await asyncio.sleep(0.1)
            m = len(got.items)
            await src.integrity_poll()
            snap = {r.key: r for r in got.items[m:]}
            for p in rtu.points:
                r = snap[f"{rtu.name}/{p.name}"]
                assert r.quality & 0x3 == 0, r
                assert r.value == pytest.approx(wire(p, fw.value(idx[p.name])), rel=1e-6, abs=1e-9), p.name
            assert src.stats["malformed_fragments"] == 0 and src.unmapped.count == 0
            ticking = True
            cb = next(p for p in rtu.points if p.group == "double_binary" and p.command and p.command.enabled)
            key = f"{rtu.name}/{cb.name}"
            target = 1 if snap[key].value == 2 else 2
            res = await src.operate(cb.name, target, "sbo")
            assert res.ok, res
            await got.wait_for(lambda rs: any(r.key == key and r.event and r.value == target for r in rs), 5.0)
            assert fw.value(idx[cb.name]) == target
    finally:
        tick_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick_task
        await os_.stop()


async def test_emulator_feeds_the_rtu_the_right_points() -> None:
    """With no master connected the outstation still tracks the firmware and queues events, as a real one
    does (an event-driven device's buffers are its listener: the emulator keeps telling it every change)."""
    cfg = rtu_site(free_port())
    rtu = cfg.devices[0]
    async with Emulator(cfg, tick=0.05) as emu:
        os_ = emu.devices[rtu.name].server
        started = os_.stats["events_buffered"]
        await asyncio.sleep(0.3)
        emu._task.cancel()  # freeze, then compare
        await asyncio.sleep(0.05)
        assert os_.stats["connections"] == 0 and os_.stats["events_buffered"] > started
        for p in rtu.points:
            fw_value = wire(p, emu.fw.value(emu.fw.index(rtu.name, p.name)))
            assert os_.value(p.name) == pytest.approx(fw_value, rel=1e-6), p.name


async def test_a_late_master_gets_the_events_of_its_absence_with_their_own_times() -> None:
    """A change made while no master listens reaches the master that connects later as an event with the
    firmware's value, quality and the time of the change (not of the connection)."""
    cfg = rtu_site(free_port())
    rtu = cfg.devices[0]
    async with Emulator(cfg, tick=0.05) as emu:
        os_ = emu.devices[rtu.name].server
        emu._task.cancel()  # ticks driven by hand below
        await asyncio.sleep(0.05)
        fw = emu.fw
        p = next(p for p in rtu.points if p.group == "analog" and p.event_class)
        i = fw.index(rtu.name, p.name)
        fw.set_fault(i, {"kind": "out_of_range", "value": 4321.0})
        t = time.time() - 5.0  # a change five seconds before the master arrives
        fw.tick(t)
        emu._push_changed(t)
        q = fw.quality(i)
        assert q != 0
        key = f"{rtu.name}/{p.name}"
        async with source(rtu, os_.port) as (src, got):
            evs = await got.wait_for(lambda rs: any(r.key == key and r.event and r.value == pytest.approx(wire(p, 4321.0))
                                                    for r in rs), 10.0)
            ev = next(r for r in evs if r.key == key and r.event and r.value == pytest.approx(wire(p, 4321.0)))
            assert ev.quality == to_quality("analog", from_quality("analog", q))
            assert abs(ev.timestamp - t) < 0.002  # the change's own time, ms on the wire
