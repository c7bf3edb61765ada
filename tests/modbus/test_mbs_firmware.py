"""The emulated device over the simulated firmware's register image (firmware_sim's
FirmwareModbus, the C core when built): values, word order, commands, refused writes."""

from __future__ import annotations

import struct

from devices.modbus import ModbusServer
from firmware_sim.firmware import Firmware
from firmware_sim.model import RegisterLayout, SimPoint
from tests.modbus.mbs_raw import Raw, req


def firmware() -> Firmware:
    pts = [
        SimPoint(device="pqm", name="V", signal={"kind": "constant", "value": 230.5},
                 register=RegisterLayout(table="holding", address=0, type="float32", word_order="little")),
        SimPoint(device="pqm", name="Hz", signal={"kind": "constant", "value": 50.012},
                 register=RegisterLayout(table="input", address=0, type="int16", scale=0.001, offset=50)),
        SimPoint(device="pqm", name="P", signal={"kind": "sine", "mean": 5000, "amplitude": 500, "period": 60},
                 register=RegisterLayout(table="holding", address=20, type="float32")),
        SimPoint(device="pqm", name="Setpoint", signal=None,
                 register=RegisterLayout(table="holding", address=10, type="uint16", scale=0.1)),
        SimPoint(device="pqm", name="CB", signal=None,
                 register=RegisterLayout(table="coil", address=3, type="bool")),
    ]
    return Firmware(pts, seed=1)


async def test_served_from_firmware_image() -> None:
    fw = firmware()
    fw.tick(1_700_000_000.0)
    async with ModbusServer(fw.modbus("pqm"), unit_id=1) as srv:
        c = await Raw.open(srv.port)
        resp = await c.call(req(3, "HH", 0, 2))
        lo, hi = struct.unpack(">2H", resp[2:])  # word_order little: low word first
        assert resp[:2] == bytes((3, 4)) and struct.unpack(">f", struct.pack(">2H", hi, lo))[0] == 230.5
        resp = await c.call(req(4, "HH", 0, 1))
        assert struct.unpack(">h", resp[2:])[0] == 12  # (50.012 - 50) / 0.001

        # a setpoint is commandable: the write takes effect at the next tick
        assert await c.call(req(6, "HH", 10, 425)) == req(6, "HH", 10, 425)
        assert await c.call(req(5, "HH", 3, 0xFF00)) == req(5, "HH", 3, 0xFF00)
        fw.tick(1_700_000_001.0)
        assert abs(fw.value(fw.index("pqm", "Setpoint")) - 42.5) < 1e-4
        assert fw.value(fw.index("pqm", "CB")) == 1.0
        assert await c.call(req(3, "HH", 10, 1)) == bytes((3, 2)) + struct.pack(">H", 425)

        # a measured value is not: the image refuses, the master sees 02
        assert await c.call(req(16, "HHB", 20, 2, 4, tail=b"\x00\x00\x00\x00")) == bytes((0x90, 2))
        p = struct.unpack(">f", (await c.call(req(3, "HH", 20, 2)))[2:])[0]
        assert 4499 < p < 5501 and abs(p - fw.value(fw.index("pqm", "P"))) < 1e-3
        assert srv.stats.exceptions == {2: 1}
        # beyond the image the server answers before asking the model
        size = fw.modbus("pqm").size("holding")
        assert await c.call(req(3, "HH", size, 1)) == bytes((0x83, 2))
        await c.close()
