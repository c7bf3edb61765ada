"""``gridgate emulate`` without the fault API runs from compact tables (devices/emusite.py), and a
restart reads them from the compiled-site cache (devices/emucache.py): the registers served must
be those of the emulator built from the config model, tick for tick."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import yaml

from devices import emucache, emusite
from devices.emulator import Emulator
from gateway.config import load_config

T0 = 1_767_225_600.0


def site(tmp_path: Path) -> Path:
    def dev(i: int) -> dict:
        return {"name": f"m{i}", "kind": "meter", "protocol": "modbus", "port": 15020 + i, "points": [
            {"name": "P", "table": "holding", "address": 0, "type": "int32", "word_order": "little", "scale": 0.01,
             "measurement": {"equipment": f"SUB/B/L{i}", "type": "ActivePower"},
             "signal": {"kind": "sine", "mean": 100.0 * (i + 1), "amplitude": 20, "period": 60, "noise": 1.5}},
            {"name": "V", "table": "input", "address": 4, "type": "float32",
             "measurement": {"equipment": f"SUB/B/L{i}", "type": "PhaseVoltage", "phases": "A"},
             "signal": {"kind": "random_walk", "start": 230, "step": 0.5, "revert": 0.1},
             "faults": [{"kind": "noise", "sigma": 2.0}]},
            {"name": "CB", "table": "coil", "address": 1, "type": "bool", "offset": 1,
             "measurement": {"equipment": f"SUB/B/L{i}", "type": "SwitchPosition"},
             "signal": {"kind": "discrete", "initial": 2, "min": 1, "max": 2}},
        ]}
    raw = {"site": {"name": "COMPACT"}, "gateway": {"id": "gw-compact"},
           "substations": [{"name": "SUB", "bays": [{"name": "B", "equipment": [
               {"name": f"L{i}", "type": "EnergyConsumer"} for i in range(3)]}]}],
           "devices": [dev(i) for i in range(3)]}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def image(emu: Emulator, device: str) -> tuple[bytes, bytes, bytes]:
    m = emu.fw.modbus(device)
    return m.read_registers("holding", 0, 2), m.read_registers("input", 4, 2), m.read_bits("coil", 1, 1)


def test_compact_site_serves_the_registers_of_the_model_built_emulator(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", str(tmp_path / "cache"))
    path = site(tmp_path)
    full = Emulator(load_config(path), seed=7)
    compact = emusite.build(path, seed=7, only=["m2", "m0"], cache=True)
    assert compact.known == ["m0", "m1", "m2"]
    assert [(i, d.name, d.port, d.points) for i, d in compact.devices] == [(0, "m0", 15020, ("P", "V", "CB")),
                                                                          (2, "m2", 15022, ("P", "V", "CB"))]
    cached = emucache.get(path.read_bytes(), emusite._options(7, ["m2", "m0"], None))
    assert cached is not None and cached.devices == compact.devices
    assert emucache.get(path.read_bytes(), emusite._options(8, ["m2", "m0"], None)) is None  # another seed: a miss
    emus = [full, Emulator(compact), Emulator(cached)]
    assert emus[1].cfg is None and emus[1].fw.plan.faults == full.fw.plan.faults != []
    for k in range(20):
        for e in emus:
            e.fw.tick(T0 + 0.1 * k)
        for d in ("m0", "m1", "m2"):  # every device's values, also those this process does not serve
            images = [image(e, d) for e in emus]
            assert images[0] == images[1] == images[2], (k, d)
    p = struct.unpack("<i", struct.pack("<HH", *struct.unpack(">HH", image(full, "m1")[0])))[0] * 0.01
    assert 150 < p < 250 and image(full, "m1")[2] == b"\x01"  # closed (2) shows 1 with offset 1
    for e in emus[1:]:  # a command through the compact tables (owners and layout rebuilt from the arrays)
        e.fw.modbus("m0").write_bits(1, b"\x00")
        e.fw.tick(T0 + 3)
        assert e.fw.value(e.fw.index("m0", "CB")) == 1
        with pytest.raises(ValueError, match="outside the allowed range 1..2"):
            e.fw.set_state(e.fw.index("m0", "CB"), 3)


def test_a_damaged_or_foreign_cache_entry_is_refused_and_the_site_built_again(tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", str(cache))
    path = site(tmp_path)
    options = emusite._options(7, None, None)
    built = emusite.build(path, seed=7, only=None, cache=True)
    (entry,) = cache.glob("emulated-*.marshal")
    blob = entry.read_bytes()
    entry.write_bytes(blob[:32] + bytes([blob[32] ^ 1]) + blob[33:])  # one bit flipped: the checksum fails
    assert emucache.get(path.read_bytes(), options) is None and "damaged" in caplog.text
    import hashlib
    import marshal

    other = marshal.dumps({"devices": []})  # a checksummed entry of another shape
    entry.write_bytes(hashlib.sha256(other).digest() + other)
    assert emucache.get(path.read_bytes(), options) is None and "not an emulator entry" in caplog.text
    again = emusite.build(path, seed=7, only=None, cache=True)  # built again and re-cached
    assert again.devices == built.devices and emucache.get(path.read_bytes(), options).devices == built.devices
