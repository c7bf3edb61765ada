"""The C core against the pure-Python reference: same seed, same values, flags and registers."""

from __future__ import annotations

import math
import struct

import pytest

from firmware_sim import Firmware
from firmware_sim.modbus import decode
from tests.firmware_sim.fwcases import all_kinds, times


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=2e-5, abs_tol=2e-4)


def _regs(fw: Firmware, table: str) -> list[int]:
    mb = fw.modbus("rtu1")
    n = mb.size(table)
    return list(struct.unpack(f">{n}H", mb.read_registers(table, 0, n)))


@pytest.mark.parametrize("seed", [0, 1, 0xDEADBEEF12345678])
def test_c_matches_python_reference(c_backend, seed):
    pts, groups = all_kinds()
    c = Firmware(pts, groups, seed=seed, backend="c")
    py = Firmware(pts, groups, seed=seed, backend="python")
    assert (c.backend, py.backend) == ("c", "python")
    mb = {k: fw.modbus("rtu1") for k, fw in (("c", c), ("py", py))}
    for k, t in enumerate(times(60)):
        if k == 20:  # commands and run-time faults mid-run, on both
            for fw in (c, py):
                fw.set_state(fw.index("rtu1", "tap"), 9)
                fw.set_state(fw.index("rtu1", "setpoint"), 42.5)
                fw.set_fault(fw.index("rtu1", "walk"), {"kind": "drift", "rate": -0.5})
                fw.set_fault(fw.index("rtu1", "P"), {"kind": "noise", "sigma": 30})
        if k == 40:
            for fw in (c, py):
                fw.clear_faults(fw.index("rtu1", "walk"))
                fw.clear_faults(fw.index("rtu1", "f_drift"))
        c.tick(t)
        py.tick(t)
        tc, vc, qc = c.snapshot()
        tp, vp, qp = py.snapshot()
        assert tc == tp == t
        for i in range(c.size):
            assert _close(vc[i], vp[i]), f"tick {k}: {c.name(i)} C {vc[i]} vs Python {vp[i]}"
        assert list(qc) == list(qp), f"tick {k}: quality differs"
        assert c.take_changed() == py.take_changed(), f"tick {k}: changed flags differ"
        # registers: decode each mapped point from both images and compare within one LSB
        for (dev, name), i in c.plan.index.items():
            lay = c.plan.layout(i)
            if lay is None:
                continue
            if lay.type == "bool":
                assert mb["c"].read_bits(lay.table, lay.address, 1) == mb["py"].read_bits(lay.table, lay.address, 1)
                continue
            words = {k2: list(struct.unpack(f">{lay.width}H", m.read_registers(lay.table, lay.address, lay.width)))
                     for k2, m in mb.items()}
            dc, dp = decode(lay, words["c"]), decode(lay, words["py"])
            lsb = abs(lay.scale) if lay.type != "float32" else 0.0
            assert abs(dc - dp) <= lsb + 1e-5 * abs(dp) + 1e-6, f"tick {k}: {name} registers {words}"
    # the run really exercised things: values moved, faults flagged quality
    assert py.quality(py.index("rtu1", "f_drop")) == 0x0002 | 0x0040
    assert py.value(py.index("rtu1", "tap")) == 9


def test_same_seed_same_values_different_seed_different_noise(c_backend):
    pts, groups = all_kinds()
    a, b, other = (Firmware(pts, groups, seed=s, backend="c") for s in (7, 7, 8))
    for t in times(25):
        for fw in (a, b, other):
            fw.tick(t)
    _, va, qa = a.snapshot()
    _, vb, qb = b.snapshot()
    _, vo, _ = other.snapshot()
    assert va.tobytes() == vb.tobytes() and qa.tobytes() == qb.tobytes()
    i = a.index("rtu1", "const")
    assert va[i] != vo[i]  # noise differs with the seed


def test_noise_depends_on_time_not_on_tick_history(backend_name):
    pts, groups = all_kinds()
    ts = times(10)
    many = Firmware(pts, groups, seed=3, backend=backend_name)
    one = Firmware(pts, groups, seed=3, backend=backend_name)
    for t in ts:
        many.tick(t)
    one.tick(ts[-1])
    for name in ("const", "sine", "profile", "f_noise"):
        i = many.index("rtu1", name)
        assert many.value(i) == one.value(i), name
