"""A ``disconnect`` on a device this emulator leaves out (``gridgate emulate --device``) neither
starts it on clear nor fails: only the served devices run, before, during and after the fault."""

from __future__ import annotations

from devices.emulator import Emulator
from devices.scenario.inject import Injector
from tests.scenario.helpers import example_subset


async def test_disconnect_on_a_device_left_out_stays_out() -> None:
    cfg = example_subset("pqm-inc1", "rtu1")
    emu = Emulator(cfg, only={"pqm-inc1"})
    await emu.start()
    try:
        assert set(emu.devices) == {"pqm-inc1"} and emu.serves("pqm-inc1") and not emu.serves("rtu1")
        inj = Injector(emu)
        a = await inj.inject({"device": "rtu1"}, {"kind": "disconnect"})
        assert set(emu.devices) == {"pqm-inc1"}
        await inj.clear(a.id)
        assert set(emu.devices) == {"pqm-inc1"}  # rtu1 was never served: clearing does not start it
        b = await inj.inject({"device": "pqm-inc1"}, {"kind": "disconnect"})  # the served one still takes faults
        assert b.devices == ["pqm-inc1"]
        await inj.clear(b.id)
        assert "pqm-inc1" in emu.devices
    finally:
        await emu.stop()
