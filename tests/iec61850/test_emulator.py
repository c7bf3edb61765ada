"""The emulator (firmware + IEDs, as the lead wired it) against the gateway's MMS driver."""

import asyncio
import os

import pytest

from devices.emulator import Emulator
from gateway.config import Config, load_config
from gateway.southbound.iec61850 import MmsSource
from tests.iec61850.conftest import fast_backoff, running
from tests.iec61850.support import ROOT
from tests.support.mosquitto import free_port


def _ied_band(p) -> float:
    """The IED's deadband of a point in engineering units (db × rangeC span × scale)."""
    from devices.iec61850.conform import analogue

    parts = p.reference.split(".")
    return analogue(p, parts[1]).abs_db() * p.scale * 1.001 + 1e-6


async def test_firmware_values_and_breaker_operate_through_the_emulator():
    base = load_config(os.path.join(ROOT, "configs", "primary-substation.yaml")).model_dump()
    for d in base["devices"]:
        d["port"] = free_port()
    cfg = Config.model_validate(base)
    dev = next(d for d in cfg.devices if d.protocol == "iec61850")
    pos = next(p for p in dev.points if p.measurement.type == "SwitchPosition")
    async with Emulator(cfg, tick=0.1, only={dev.name}) as emu:
        assert dev.name in emu.devices, emu.skipped
        src = MmsSource(dev, fast_backoff())
        async with running(src) as sink:
            names = [p.name for p in dev.points]
            await sink.wait(lambda: src.connected and all(sink.of(n) for n in names), timeout=10, what="GI")
            rd = emu.devices[dev.name]
            sent: dict[str, tuple] = {}
            real_update = rd.update

            def spy(point, value, quality, ts):  # what the emulator hands the IED
                sent[point] = (value, quality, ts)
                real_update(point, value, quality, ts)

            rd.update = spy
            analogs = {p.name for p in dev.points if p.measurement.kind == "Analog"}
            band = {p.name: _ied_band(p) for p in dev.points if p.measurement.kind == "Analog"}
            await sink.wait(lambda: len(analogs & set(sent)) >= 3, timeout=5, what="firmware changes")
            rd.update = real_update
            await asyncio.sleep(0.3)  # the last spied updates' reports arrive
            for name, (value, quality, ts) in sent.items():  # served and reported as the firmware made it
                if name not in analogs:
                    continue  # an unchanged discrete re-sent by the emulator is no data change: no report
                got = [r for r in sink.of(name) if r.timestamp <= ts + 2e-6]  # reported up to that sample
                assert got[-1].quality == quality
                if abs(got[-1].timestamp - ts) < 2e-6:  # reported: exactly the firmware's value (float32)
                    assert got[-1].value == pytest.approx(value, rel=1e-6, abs=1e-3), name
                else:  # inside the IED's deadband: the last report stands, within db of the new sample
                    assert abs(got[-1].value - value) <= band[name], name
            for name in analogs:  # every report carries a value the firmware produced at that time
                assert all(r.quality == 0 for r in sink.of(name)), name
            before = sink.of(pos.name)[-1].value
            target = 1 if before == 2 else 2
            res = await src.operate(pos.name, target, pos.command.mode if pos.command else "sbo")
            assert res.ok, res
            r = await sink.wait(lambda: [x for x in sink.of(pos.name) if x.event and x.value == target], timeout=5,
                                what="breaker follows the command via the firmware")
            assert r[-1].quality == 0
            assert emu.fw.value(emu.fw.index(dev.name, pos.name)) == target
