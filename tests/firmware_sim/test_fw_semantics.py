"""What each signal and fault kind produces, checked against hand-computed values (both backends)."""

from __future__ import annotations

import math

import pytest

from firmware_sim import Firmware
from firmware_sim.profiles import SHAPES
from firmware_sim.spec import LoadGroup
from tests.firmware_sim.fwcases import T0, sp

INVALID, QUESTIONABLE, OVERFLOW, OUT_OF_RANGE, FAILURE = 0x2, 0x3, 0x4, 0x8, 0x40


def run(backend, pts, ts, groups=None, seed=0):
    fw = Firmware(pts, groups or {}, seed=seed, backend=backend)
    out = []
    for t in ts:
        fw.tick(t)
        out.append(fw.snapshot())
    return fw, out


def test_gateway_quality_bits_agree():
    from firmware_sim import quality as fq
    from gateway.site.quality import COMMS_LOST, Q

    for name in ("INVALID", "QUESTIONABLE", "OVERFLOW", "OUT_OF_RANGE", "OSCILLATORY", "FAILURE", "OLD_DATA",
                 "INACCURATE", "SUBSTITUTED", "TEST", "OPERATOR_BLOCKED"):
        assert getattr(fq, name) == int(getattr(Q, name)), name
    assert fq.INVALID | fq.OLD_DATA | fq.FAILURE == int(COMMS_LOST)


def test_sine_ramp_steps_constant(backend_name):
    pts = [
        sp("sine", {"kind": "sine", "mean": 50, "amplitude": 2, "period": 8, "phase": 90}),
        sp("ramp", {"kind": "ramp", "start": 1, "rate": 0.5, "max": 2.5}),
        sp("wrap", {"kind": "ramp", "start": 0, "rate": 3, "min": 0, "max": 10, "wrap": True}),
        sp("steps", {"kind": "steps", "schedule": [[1, 10], [3, 20]], "repeat": 4}),
        sp("const", {"kind": "constant", "value": -7.25}),
    ]
    base = 1_000_000.0  # a multiple of the sine period: phase 0 there
    ts = [base + x for x in (0.0, 1.0, 2.0, 3.5, 4.5, 7.0)]
    fw, snaps = run(backend_name, pts, ts)
    ix = {n: fw.index("rtu1", n) for n in ("sine", "ramp", "wrap", "steps", "const")}
    for (t, v, q), x in zip(snaps, (0.0, 1.0, 2.0, 3.5, 4.5, 7.0)):
        assert v[ix["sine"]] == pytest.approx(50 + 2 * math.sin(2 * math.pi * (x / 8 + 0.25)), abs=1e-4)
        assert v[ix["ramp"]] == pytest.approx(min(1 + 0.5 * x, 2.5), abs=1e-6)
        assert v[ix["wrap"]] == pytest.approx((3 * x) % 10, abs=1e-5)
        step = x % 4
        assert v[ix["steps"]] == (10 if step < 3 else 20) if step >= 1 else v[ix["steps"]] == 10  # before the first entry: first value
        assert v[ix["const"]] == -7.25
        assert list(q) == [0] * len(q)


def test_daily_profile_interpolates_half_hours(backend_name):
    midnight = 1_763_769_600.0  # 2025-11-22 00:00 UTC
    pts = [sp("p", {"kind": "daily_profile", "peak": 1000, "shape": "domestic"}),
           sp("local", {"kind": "daily_profile", "peak": 1000, "shape": "domestic", "utc_offset_h": 1.0})]
    shape = SHAPES["domestic"]
    peak = max(shape)
    fw, snaps = run(backend_name, pts, [midnight + 36 * 1800, midnight + 36 * 1800 + 600, midnight + 47 * 1800 + 900])
    p, loc = fw.index("rtu1", "p"), fw.index("rtu1", "local")
    assert snaps[0][1][p] == pytest.approx(1000 * shape[36] / peak, rel=1e-6)
    assert snaps[1][1][p] == pytest.approx(1000 * (shape[36] + (shape[37] - shape[36]) / 3) / peak, rel=1e-6)
    assert snaps[2][1][p] == pytest.approx(1000 * (shape[47] + shape[0]) / 2 / peak, rel=1e-6)  # wraps to midnight
    assert snaps[0][1][loc] == pytest.approx(1000 * shape[38] / peak, rel=1e-6)  # UTC+1: two half hours later
    assert max(shape) == 1.0 and shape.index(1.0) in range(34, 39)  # domestic peaks at 17:00-19:00


def test_correlated_group_is_physical(backend_name):
    pts = [sp(q, {"kind": "derived", "group": "F1", "quantity": q}) for q in ("S", "P", "Q", "I", "V", "PF")]
    groups = {"rtu1": [LoadGroup(name="F1", load={"kind": "random_walk", "start": 3000, "step": 50},
                                 power_factor=0.9, voltage=11000, voltage_noise=30)]}
    fw, snaps = run(backend_name, pts, [T0 + k for k in range(20)], groups)
    ix = {q: fw.index("rtu1", q) for q in ("S", "P", "Q", "I", "V", "PF")}
    volts = set()
    for _, v, _ in snaps:
        S, P, Q, I, V, PF = (v[ix[q]] for q in ("S", "P", "Q", "I", "V", "PF"))
        assert P == pytest.approx(S * 0.9, rel=1e-6)
        assert P * P + Q * Q == pytest.approx(S * S, rel=1e-5)
        assert I == pytest.approx(S * 1000 / (math.sqrt(3) * V), rel=1e-5)
        assert abs(V - 11000) <= 30 * 3.47 and PF == pytest.approx(0.9)
        volts.add(V)
    assert len(volts) > 10  # voltage noise moves, shared by V and I
    assert len({round(s[1][ix["S"]], 3) for s in snaps}) > 10  # the load walks


def test_counter_integrates_trapezoid_and_rolls_over(backend_name):
    pts = [sp("P", {"kind": "ramp", "start": 0, "rate": 1}),  # kW rising 1 kW/s
           sp("E", {"kind": "counter", "source": "P", "scale": 1.0, "start": 5}),
           sp("R", {"kind": "counter", "source": "P", "scale": 1.0, "rollover": 30})]
    fw, snaps = run(backend_name, pts, [T0 + k for k in range(11)])
    e, r = fw.index("rtu1", "E"), fw.index("rtu1", "R")
    assert snaps[0][1][e] == 5  # first tick integrates nothing
    assert snaps[10][1][e] == pytest.approx(5 + 50, rel=1e-6)  # ∫0..10 t dt = 50 exactly with trapezoids
    assert snaps[10][1][r] == pytest.approx(50 % 30, rel=1e-6)


def test_discrete_commands_and_changed_flags(backend_name):
    pts = [sp("brk", {"kind": "discrete", "initial": 2, "min": 0, "max": 3}),
           sp("ramp", {"kind": "ramp", "start": 0, "rate": 1}, deadband=2.5),
           sp("sp", None)]
    fw = Firmware(pts, backend=backend_name)
    b, rp, s = (fw.index("rtu1", n) for n in ("brk", "ramp", "sp"))
    fw.tick(T0)
    assert sorted(fw.take_changed()) == sorted([b, rp, s])  # first tick reports everything
    assert fw.take_changed() == []  # flags were cleared
    seen = []
    for k in range(1, 10):
        fw.tick(T0 + k)
        seen.append(rp in fw.take_changed())
    # reported at 0, then when it moved more than 2.5 from the last report: 3, 6, 9
    assert seen == [k in (3, 6, 9) for k in range(1, 10)]
    fw.set_state(b, 1)
    fw.set_state(s, 12.5)
    assert fw.value(b) == 2  # takes effect at the next tick
    fw.tick(T0 + 10)
    assert {b, s} <= set(fw.take_changed())
    assert (fw.value(b), fw.value(s)) == (1, 12.5)
    fw.set_fault(b, {"kind": "quality", "flags": ["oldData"]})  # a quality change alone is a change
    fw.tick(T0 + 11)
    assert b in fw.take_changed() and fw.quality(b) == 0x80


def test_take_changed_in_takes_only_the_selected_points(backend_name):
    """The emulator takes the points of the devices someone listens to: positions in the selection, ascending;
    the other points keep their flags until they are taken (a device listened to later gets them)."""
    from array import array

    pts = [sp(f"r{k}", {"kind": "ramp", "start": 0, "rate": 1}) for k in range(6)]
    fw = Firmware(pts, backend=backend_name)
    idx = [fw.index("rtu1", f"r{k}") for k in range(6)]
    fw.tick(T0)
    sel = array("i", [idx[4], idx[1], idx[3]])
    assert fw.take_changed_in(sel) == [0, 1, 2]
    assert fw.take_changed_in(sel) == []  # taken
    assert sorted(fw.take_changed()) == sorted([idx[0], idx[2], idx[5]])  # the others were kept
    fw.tick(T0 + 1)
    assert fw.take_changed_in(array("i", [idx[2]])) == [0]
    fw.tick(T0 + 2)  # flags stay set over ticks until taken
    assert fw.take_changed_in(array("i", [idx[5], idx[2]])) == [0, 1]
    assert fw.take_changed_in(array("i")) == []
    with pytest.raises(IndexError, match="outside the points"):
        fw.take_changed_in(array("i", [idx[0], len(pts) + 3]))
    assert idx[0] in fw.take_changed()  # a refused selection took nothing


def test_faults(backend_name):
    pts = [
        sp("stuck", {"kind": "ramp", "start": 0, "rate": 1}, faults=[{"kind": "stuck"}]),
        sp("drift", {"kind": "constant", "value": 10}, faults=[{"kind": "drift", "rate": 0.5}]),
        sp("spike", {"kind": "constant", "value": 1}, faults=[{"kind": "spike", "magnitude": 100, "every": 3}]),
        sp("sat", {"kind": "ramp", "start": 0, "rate": 1}, faults=[{"kind": "saturate", "max": 4}]),
        sp("drop", {"kind": "ramp", "start": 0, "rate": 1}, faults=[{"kind": "dropout"}]),
        sp("oor", {"kind": "constant", "value": 3}, faults=[{"kind": "out_of_range"}]),
        sp("osc", {"kind": "discrete", "initial": 2}, faults=[{"kind": "oscillation", "period": 2.0, "states": [1, 2]}]),
        sp("scale", {"kind": "constant", "value": 10}, faults=[{"kind": "scale_error", "factor": 0.5}]),
        sp("offset", {"kind": "constant", "value": 10}, faults=[{"kind": "offset", "value": -3}]),
        sp("noise", {"kind": "constant", "value": 10}, faults=[{"kind": "noise", "sigma": 1}]),
        sp("q", {"kind": "constant", "value": 1}, faults=[{"kind": "quality", "flags": ["questionable", "invalid", "test"]}]),
    ]
    fw, snaps = run(backend_name, pts, [T0 + k for k in range(8)])
    ix = lambda n: fw.index("rtu1", n)  # noqa: E731
    col = lambda n: [s[1][ix(n)] for s in snaps]  # noqa: E731
    qs = lambda n: {s[2][ix(n)] for s in snaps}  # noqa: E731
    assert col("stuck") == [0.0] * 8
    assert col("drift") == [10 + 0.5 * k for k in range(8)]
    assert col("spike") == [1, 1, 1, 101, 1, 1, 101, 1]  # one tick in each new 3 s interval
    assert col("sat") == [0, 1, 2, 3, 4, 4, 4, 4]
    assert [s[2][ix("sat")] for s in snaps] == [0] * 4 + [0] * 1 + [QUESTIONABLE | OVERFLOW] * 3
    assert col("drop") == [0.0] * 8 and qs("drop") == {INVALID | FAILURE}
    assert col("oor") == [3.0] * 8 and qs("oor") == {QUESTIONABLE | OUT_OF_RANGE}
    assert col("osc") == [1, 2, 1, 2, 1, 2, 1, 2]
    assert col("scale") == [5.0] * 8 and col("offset") == [7.0] * 8
    assert len(set(col("noise"))) == 8 and all(abs(v - 10) < 3.47 for v in col("noise"))
    assert qs("q") == {INVALID | 0x0800}  # invalid wins over questionable
    fw.clear_faults(ix("drop"))
    fw.tick(T0 + 8)
    assert fw.value(ix("drop")) == 8.0 and fw.quality(ix("drop")) == 0
