"""The plant solver's transformer vector group (Dyn11/Dyn1: an 11 kV earth fault is no earth current at
33 kV), CT saturation delaying the relay, and the AVC relay's state flags; C against the Python oracle."""

from __future__ import annotations

import dataclasses
import math

import pytest

from firmware_sim.plant import Avc
from firmware_sim.plant_synth import primary
from tests.firmware_sim.test_fw_plant import T0, _fw, _protected, _run_fault, _set, _v, _with_avc

SQRT3 = math.sqrt(3.0)


def _grouped(group: str):
    plant = _protected(earth_pickup=100.0)
    plant.transformers = [dataclasses.replace(t, vector_group=group) for t in plant.transformers]
    return plant


def _currents(fw, eq):
    return [_v(fw, eq, q) for q in ("I_A", "I_B", "I_C", "I_N")]


@pytest.mark.parametrize("group,healthy", [("Dyn11", 2), ("Dyn1", 1)])
def test_lv_earth_fault_seen_through_the_delta_winding(backend_name, group, healthy):
    """Phase A to earth on F1 (11 kV): the incomer sees the earth current, the 33 kV side none; at 33 kV two
    phases carry ratio × If/√3 and the third only load (C for Dyn11, B for Dyn1: the ±30° shift)."""
    fw = _fw(_grouped(group), backend_name)
    fw.tick(T0)
    load_hv = _v(fw, "T1", "I")
    fw.plant_fault(fw.index("dev", "F1:P"), "short_circuit", 0.5, "phase_earth")
    fw.tick(T0 + 0.02)
    i_f = _v(fw, "F1", "I_N")
    assert 700 < i_f < 1100 and _v(fw, "INC1", "I_N") == pytest.approx(i_f, rel=0.02)  # LV: back to T1's neutral
    for eq in ("T1", "T1/HVCB", "GRID"):
        assert _currents(fw, eq)[3] == 0, eq  # zero sequence circulates in the delta: no 33 kV earth current
    hv = _currents(fw, "T1")[:3]
    assert _currents(fw, "T1/HVCB")[:3] == pytest.approx(hv, rel=1e-6)  # the HV breaker's CTs see the same
    grid = _currents(fw, "GRID")[:3]  # T1's fault currents plus T2's balanced load
    assert grid[healthy] == min(grid) and max(grid) > 1.5 * min(grid)
    ratio = 11.5 / 33.0 * (1 + 0.0125 * (_v(fw, "T1", "tap") - 9))
    faulted = [hv[k] for k in range(3) if k != healthy]
    for i in faulted:
        assert i == pytest.approx(ratio * i_f / SQRT3, abs=1.5 * load_hv)
    assert hv[healthy] < 1.5 * load_hv and hv[healthy] < 0.5 * min(faulted)
    assert _currents(fw, "T2")[:3] == pytest.approx([_v(fw, "T2", "I")] * 3, rel=1e-6)  # untouched transformer


def test_lv_phase_phase_fault_gives_the_2_1_1_pattern_at_33kv(backend_name):
    fw = _fw(_grouped("Dyn11"), backend_name)
    fw.plant_fault(fw.index("dev", "F1:P"), "short_circuit", 2.0, "phase_phase")
    fw.tick(T0)
    ia, ib, ic, i_n = _currents(fw, "T1")
    assert i_n == 0
    assert ic > 1.6 * max(ia, ib) and ia == pytest.approx(ib, rel=0.25)  # B-C on 11 kV: C doubled at 33 kV


def test_c_matches_python_through_the_delta_winding(c_backend):
    c, py = _fw(_grouped("Dyn1"), "c", 4), _fw(_grouped("Dyn1"), "python", 4)
    for fw in (c, py):
        fw.plant_fault(fw.index("dev", "F2:P"), "short_circuit", 0.7, "phase_earth")
        fw.tick(T0)
    _, vc, _ = c.snapshot()
    _, vp, _ = py.snapshot()
    for i in range(c.size):
        assert math.isclose(vc[i], vp[i], rel_tol=1e-5, abs_tol=1e-3), f"{c.name(i)} C {vc[i]} vs Python {vp[i]}"
    assert c.value(c.index("dev", "T2:I_B")) < 0.5 * c.value(c.index("dev", "T2:I_A"))  # F2 is on T2's section


# ------------------------------------------------------------------ CT saturation


def _curve_si(i: float, pickup=400.0, tms=0.1) -> float:
    return tms * 0.14 / ((i / pickup) ** 0.02 - 1.0)


def test_saturated_ct_under_reads_and_the_relay_trips_later(backend_name):
    healthy = _run_fault(_fw(_protected(), backend_name), ohm=3.0)
    fw = _fw(_protected(), backend_name)
    fw.plant_fault(fw.index("dev", "F1/CB:I"), "ct_saturation", 0.4, knee_a=200.0)
    rows = _run_fault(fw, ohm=3.0)
    t_op_true = next(r[0] for r in healthy if r[2] == 1) - (T0 + 0.5)
    t_op = next(r[0] for r in rows if r[2] == 1) - (T0 + 0.5)
    fault = next(r for r in rows if r[1] == 1)
    i_true = next(r[4] for r in healthy if r[1] == 1)  # the breaker's true primary current in the fault
    seen = fault[4]
    assert seen == pytest.approx(200.0 + (i_true - 200.0) * 0.4, rel=0.03)  # the breaker CT under-reads
    assert t_op_true == pytest.approx(_curve_si(i_true), abs=0.02 + 1e-6)
    assert t_op == pytest.approx(_curve_si(seen), abs=0.02 + 1e-6)  # the curve at the current the relay saw
    assert t_op > t_op_true + 0.1  # later than the true current would trip
    assert next(r[0] for r in rows if r[3] == 1) - (T0 + 0.5) == pytest.approx(t_op + 0.06, abs=0.02 + 1e-6)


def test_saturation_leaves_the_line_reading_true_and_clears(backend_name):
    fw = _fw(_protected(), backend_name)
    cb = fw.index("dev", "F1/CB:I")
    fw.plant_fault(cb, "ct_saturation", 0.5)
    fw.tick(T0)
    assert _v(fw, "F1/CB", "I") == pytest.approx(0.5 * _v(fw, "F1", "I"), rel=1e-6)  # knee 0: half of any current
    fw.plant_fault(cb, "ct_saturation", 1.0)  # healthy again
    fw.tick(T0 + 1)
    assert _v(fw, "F1/CB", "I") == pytest.approx(_v(fw, "F1", "I"), rel=1e-4)
    with pytest.raises(ValueError, match="ct_saturation applies to a switch"):
        fw.plant_fault(fw.index("dev", "F1:P"), "ct_saturation", 0.5)
    with pytest.raises(ValueError, match="knee_a is a current >= 0"):
        fw.plant_fault(cb, "ct_saturation", 0.5, knee_a=-1)


def test_c_matches_python_with_a_saturated_ct(c_backend):
    c, py = _fw(_protected(4), "c", 6), _fw(_protected(4), "python", 6)
    for fw in (c, py):
        fw.plant_fault(fw.index("dev", "F1/CB:I"), "ct_saturation", 0.3, knee_a=500.0)
    rc, rp = _run_fault(c, ohm=1.5), _run_fault(py, ohm=1.5)
    assert [r[1:4] for r in rc] == [r[1:4] for r in rp]
    _, vc, _ = c.snapshot()
    _, vp, _ = py.snapshot()
    for i in range(c.size):
        assert math.isclose(vc[i], vp[i], rel_tol=1e-5, abs_tol=1e-3), f"{c.name(i)} C {vc[i]} vs Python {vp[i]}"


# ------------------------------------------------------------------ AVC state flags


def test_site_file_quantities_are_the_solvers():
    from typing import get_args

    from firmware_sim.plant import QUANTITIES
    from firmware_sim.spec import PlantValue

    assert set(get_args(PlantValue.model_fields["quantity"].annotation)) == set(QUANTITIES)

FLAGS = ("avc_in_band", "avc_raise", "avc_lower", "avc_timing", "avc_blocked", "avc_lockout")


def _flags(fw, t="T1"):
    return {q.removeprefix("avc_"): _v(fw, t, q) for q in FLAGS} | {"state": _v(fw, t, "avc_state"),
                                                                   "auto": _v(fw, t, "avc_auto")}


def test_avc_flags_follow_the_relay(backend_name):
    fw = _fw(_with_avc(tap=3, delay=10.0, tap_time=2.0), backend_name)
    seen = []
    for s in range(240):
        fw.tick(T0 + s)
        f = _flags(fw)
        assert sum(f[k] for k in ("in_band", "timing", "blocked", "lockout")) + (f["state"] in (0, 3)) == 1, f
        seen.append(f)
    first = seen[0]
    assert first["state"] == 2 and first["timing"] == 1 and first["raise"] == 1 and first["lower"] == 0  # low: raise
    moving = next(f for f in seen if f["state"] == 3)
    assert moving["raise"] == 1 and moving["timing"] == 0
    assert seen[-1]["in_band"] == 1 and seen[-1]["raise"] == seen[-1]["lower"] == 0 and seen[-1]["auto"] == 1
    fw.plant_fault(fw.index("dev", "GRID:P"), "loss_of_supply", 1)  # de-energised: blocked, not "in band"
    fw.tick(T0 + 241)
    assert _flags(fw)["blocked"] == 1 and _flags(fw)["state"] == 5 and _flags(fw)["in_band"] == 0
    fw.plant_fault(fw.index("dev", "GRID:P"), "loss_of_supply", 0)
    fw.plant_fault(fw.index("dev", "F1:P"), "short_circuit", 0.3)  # a close-in fault: undervoltage blocking
    fw.tick(T0 + 242)
    assert _v(fw, "BB1", "V") < 0.8 * 11_100 and _flags(fw)["blocked"] == 1
    fw.plant_fault(fw.index("dev", "F1:P"), "short_circuit", 0)
    fw.plant_fault(fw.index("dev", "T1:P"), "tap_runaway", 2)
    for s in range(243, 260):
        fw.tick(T0 + s)
    assert _flags(fw)["lockout"] == 1 and _flags(fw)["state"] == 4
    _set(fw, "T1", "avc_auto", 0)
    fw.tick(T0 + 261)
    f = _flags(fw)
    assert f["auto"] == 0 and f["lower"] == 1 and f["state"] == 3  # manual: the stuck motor keeps lowering


def test_avc_lower_and_the_end_stop(backend_name):
    fw = _fw(_with_avc(tap=16, delay=10.0, tap_time=2.0), backend_name)
    fw.tick(T0)
    f = _flags(fw)
    assert f["lower"] == 1 and f["raise"] == 0 and f["timing"] == 1
    plant = primary(4, seed=2, bus_section_closed=False)
    avc = Avc(target=9_000.0, band=0.015, delay=10.0, tap_time=2.0)  # asks to lower from the bottom tap
    plant.transformers = [dataclasses.replace(t, tap=1, avc=avc) for t in plant.transformers]
    fw = _fw(plant, backend_name)
    for s in range(30):
        fw.tick(T0 + s)
    f = _flags(fw)
    assert f["blocked"] == 1 and f["lower"] == 0 and _v(fw, "T1", "tap") == 1
