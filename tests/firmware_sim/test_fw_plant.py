"""The plant solver inside the firmware: physics on plant points, commands that change the plant,
and the C core against the Python reference on random sites."""

from __future__ import annotations

import math
import random

import pytest

from firmware_sim import Firmware, PlanError, SimPoint
from firmware_sim.plant_synth import primary

T0 = 1_765_000_000.0 - 1_765_000_000.0 % 86400 + 18 * 3600  # 18:00 UTC, evening peak


def _pts(plant, device="dev"):
    """One point per (equipment, allowed quantity), in SI units."""
    from firmware_sim.plant import ALLOWED

    pts = []
    for name, typ in plant.equipment():
        for q in ALLOWED[typ]:
            pts.append(SimPoint(device=device, name=f"{name}:{q}",
                                signal={"kind": "plant", "equipment": name, "quantity": q}))
    return pts


def _fw(plant, backend="python", seed=0):
    return Firmware(_pts(plant), seed=seed, backend=backend, plant=plant)


def _v(fw, eq, q):
    return fw.value(fw.index("dev", f"{eq}:{q}"))


def _set(fw, eq, q, v):
    fw.set_state(fw.index("dev", f"{eq}:{q}"), v)


def test_kirchhoff_on_a_primary(backend_name):
    plant = primary(6, seed=3)
    fw = _fw(plant, backend_name)
    for h in range(0, 24, 3):  # across a simulated day
        fw.tick(T0 + h * 3600)
        loads = sum(_v(fw, f"F{k}", "P") for k in range(1, 7))
        tx = sum(_v(fw, t, "P") for t in ("T1", "T2"))
        losses = sum(_v(fw, t, "P_loss") for t in ("T1", "T2"))
        assert loads > 1e6
        assert tx == pytest.approx(loads + losses, rel=1e-4)
        assert 0 < losses < 0.03 * loads
        assert _v(fw, "GRID", "P") == pytest.approx(tx, rel=1e-5)
        # incomers + bus section = feeders of each section (switches are lossless)
        sec1 = sum(_v(fw, f"F{k}", "P") for k in (1, 3, 5))
        assert _v(fw, "INC1", "P") - _v(fw, "BS1", "P") == pytest.approx(sec1, rel=1e-4)
        assert 10_500 < _v(fw, "BB1", "V") < 11_600
        assert _v(fw, "F1/CB", "I") == pytest.approx(
            _v(fw, "F1", "S") / (math.sqrt(3) * _v(fw, "BB1", "V")), rel=1e-4)


def test_opening_a_feeder_breaker_deenergises_it_and_unloads_the_incomer(backend_name):
    fw = _fw(primary(6, seed=1, bus_section_closed=False), backend_name)
    fw.tick(T0)
    f1 = _v(fw, "F1", "P")
    inc = _v(fw, "INC1", "P")
    assert f1 > 1e5 and _v(fw, "F1", "I") > 5
    _set(fw, "F1/CB", "position", 1)
    fw.tick(T0 + 0.1)
    assert _v(fw, "F1/CB", "position") == 1
    assert [_v(fw, "F1", q) for q in ("P", "Q", "I", "V", "F")] == [0, 0, 0, 0, 0]
    assert _v(fw, "F1/CB", "I") == 0
    assert _v(fw, "INC1", "P") == pytest.approx(inc - f1, rel=0.01)  # the load moved 0.1 s on the shape only
    _set(fw, "F1/CB", "position", 2)
    fw.tick(T0 + 0.2)
    assert _v(fw, "F1", "P") == pytest.approx(f1, rel=0.01)
    assert _v(fw, "INC1", "P") == pytest.approx(inc, rel=0.01)


def test_incomer_and_bus_section(backend_name):
    fw = _fw(primary(4, seed=2, bus_section_closed=False), backend_name)
    fw.tick(T0)
    both = _v(fw, "INC1", "P") + _v(fw, "INC2", "P")
    _set(fw, "INC1", "position", 1)  # section 1 loses its only infeed
    fw.tick(T0 + 0.1)
    assert _v(fw, "BB1", "V") == 0 and _v(fw, "F1", "I") == 0 and _v(fw, "F3", "P") == 0
    assert abs(_v(fw, "T1", "P")) < 1 and _v(fw, "T1", "V") > 30_000  # T1 still energised from 33 kV, unloaded
    assert _v(fw, "BB2", "V") > 10_000 and _v(fw, "F2", "P") > 0
    _set(fw, "BS1", "position", 2)  # closing the bus section transfers section 1 to T2
    fw.tick(T0 + 0.2)
    assert _v(fw, "F1", "P") > 0 and _v(fw, "BB1", "V") == pytest.approx(_v(fw, "BB2", "V"))
    assert _v(fw, "INC2", "P") == pytest.approx(both, rel=0.01)
    assert _v(fw, "BS1", "P") == pytest.approx(-(_v(fw, "F1", "P") + _v(fw, "F3", "P")), rel=1e-4)
    _set(fw, "GRID", "energised", 0)  # loss of the 33 kV supply
    fw.tick(T0 + 0.3)
    assert all(_v(fw, e, "V") == 0 for e in ("GRID", "T1", "T2", "BB1", "BB2", "F2"))
    assert _v(fw, "GRID", "F") == 0 and _v(fw, "INC2", "I") == 0


def test_tap_step_moves_the_bus_voltage(backend_name):
    fw = _fw(primary(4, seed=2, bus_section_closed=False), backend_name)
    fw.tick(T0)
    tap = _v(fw, "T1", "tap")
    v0 = _v(fw, "BB1", "V")
    _set(fw, "T1", "tap", tap + 2)
    fw.tick(T0)
    assert _v(fw, "T1", "tap") == tap + 2
    assert _v(fw, "BB1", "V") / v0 - 1 == pytest.approx(2 * 0.0125, abs=0.004)
    assert _v(fw, "BB2", "V") == pytest.approx(_v(fw, "BB2", "V"))


def test_plant_commands_are_checked():
    fw = _fw(primary(2))
    with pytest.raises(ValueError, match="cannot be commanded"):
        _set(fw, "F1", "P", 3)
    with pytest.raises(ValueError, match="1 open, 2 closed"):
        _set(fw, "F1/CB", "position", 7)
    with pytest.raises(ValueError, match="integer 1..17"):
        _set(fw, "T1", "tap", 18)
    with pytest.raises(PlanError, match="no plant equipment 'F9'"):
        Firmware([SimPoint(device="d", name="x", signal={"kind": "plant", "equipment": "F9", "quantity": "P"})],
                 plant=primary(2))
    with pytest.raises(PlanError, match="busbar 'BB1' has no quantity 'P'"):
        Firmware([SimPoint(device="d", name="x", signal={"kind": "plant", "equipment": "BB1", "quantity": "P"})],
                 plant=primary(2))
    with pytest.raises(PlanError, match="needs the site's `plant:` model"):
        Firmware([SimPoint(device="d", name="x", signal={"kind": "plant", "equipment": "BB1", "quantity": "V"})])


def test_phase_share_scale_and_noise():
    plant = primary(2, seed=5)
    pts = [SimPoint(device="d", name=n, signal=s) for n, s in (
        ("P", {"kind": "plant", "equipment": "F1", "quantity": "P", "scale": 0.001}),
        ("Pa", {"kind": "plant", "equipment": "F1", "quantity": "P", "phase": "A", "scale": 0.001}),
        ("Van", {"kind": "plant", "equipment": "BB1", "quantity": "V", "phase": "AN"}),
        ("V", {"kind": "plant", "equipment": "BB1", "quantity": "V"}),
        ("In", {"kind": "plant", "equipment": "F1", "quantity": "I", "phase": "N", "noise": 2}),
        ("Ia", {"kind": "plant", "equipment": "F1", "quantity": "I", "phase": "A", "noise": 2}),
        ("I", {"kind": "plant", "equipment": "F1", "quantity": "I"}),
    )]
    fw = Firmware(pts, plant=plant, backend="python")
    fw.tick(T0)
    v = {n: fw.value(fw.index("d", n)) for n in ("P", "Pa", "Van", "V", "In", "Ia", "I")}
    assert v["Pa"] == pytest.approx(v["P"] / 3, rel=1e-6)
    assert v["Van"] == pytest.approx(v["V"] / math.sqrt(3), rel=1e-6)
    assert v["In"] == 0  # balanced: no neutral current, and no noise on a zero
    assert v["Ia"] != v["I"] and abs(v["Ia"] - v["I"]) < 7


@pytest.mark.parametrize("seed", range(6))
def test_c_matches_python_on_random_sites(c_backend, seed):
    rnd = random.Random(seed)
    plant = primary(rnd.randint(1, 40), transformers=rnd.randint(1, 4), seed=seed,
                    bus_section_closed=rnd.random() < 0.5)
    c, py = _fw(plant, "c", seed), _fw(plant, "python", seed)
    sw = [s.name for s in plant.switches]
    for k in range(40):
        t = T0 + k * 1800.0 + rnd.random()
        if k % 5 == 4:  # random switching, taps and supply, on both
            for fw in (c, py):
                r2 = random.Random(seed * 100 + k)
                _set(fw, r2.choice(sw), "position", r2.choice((1, 2, 2)))
                _set(fw, "T1", "tap", r2.randint(1, 17))
                _set(fw, "GRID", "energised", 0 if r2.random() < 0.1 else 1)
        c.tick(t)
        py.tick(t)
        _, vc, _ = c.snapshot()
        _, vp, _ = py.snapshot()
        for i in range(c.size):
            assert math.isclose(vc[i], vp[i], rel_tol=1e-5, abs_tol=1e-3), f"tick {k}: {c.name(i)} C {vc[i]} vs Python {vp[i]}"


# ------------------------------------------------------------------ protection and physical events


def _protected(feeders=2, **prot):
    """A primary whose feeder breakers carry an overcurrent relay (IEC 60255 SI, 400 A, TMS 0.1)."""
    import dataclasses

    from firmware_sim.plant import Protection

    plant = primary(feeders, seed=4, bus_section_closed=False)
    relay = Protection(**{"pickup": 400.0, "curve": "SI", "tms": 0.1, **prot})
    plant.switches = [dataclasses.replace(s, protection=relay) if s.name.endswith("/CB") else s for s in plant.switches]
    return plant


def _run_fault(fw, ohm=2.0, dt=0.02, seconds=2.0, event="short_circuit"):
    """Tick at dt, short-circuit F1 at T0+0.5 s; the (t, start, operate, position, I) log of F1's breaker."""
    rows = []
    k = 0
    while k * dt <= seconds:
        t = T0 + k * dt
        if k * dt == 0.5:
            fw.plant_fault(fw.index("dev", "F1:P"), event, ohm)
        fw.tick(t)
        rows.append((t, _v(fw, "F1/CB", "start"), _v(fw, "F1/CB", "operate"), _v(fw, "F1/CB", "position"),
                     _v(fw, "F1/CB", "I")))
        k += 1
    return rows


def test_overcurrent_relay_follows_the_standard_inverse_curve_and_trips(backend_name):
    fw = _fw(_protected(), backend_name)
    rows = _run_fault(fw)
    t_start = next(r[0] for r in rows if r[1] == 1)
    fault_i = next(r[4] for r in rows if r[1] == 1)
    t_op = next(r[0] for r in rows if r[2] == 1)
    t_open = next(r[0] for r in rows if r[3] == 1)
    assert t_start == pytest.approx(T0 + 0.5)  # the tick the fault is applied
    assert 1500 < fault_i < 4000  # A: 11 kV through ~1 ohm of transformer and 2 ohm of fault
    curve = 0.1 * 0.14 / ((fault_i / 400) ** 0.02 - 1)  # IEC 60255 SI
    assert t_op - t_start == pytest.approx(curve, abs=0.02 + 1e-6)  # ± one tick
    assert t_open - t_op == pytest.approx(0.06, abs=0.02 + 1e-6)  # breaker operate time
    shown = next(r for r in rows if r[3] == 1)
    assert shown[4] > 1000  # contacts part: the position shows open while the arc still carries the current
    dead = next(r for r in rows if r[0] > t_open and r[4] == 0)
    assert dead[0] - t_open == pytest.approx(0.03, abs=0.02 + 1e-6)  # arc out at the next current zero + RMS window
    assert dead[1] == 0 and dead[2] == 0 and dead[3] == 1  # dead feeder: no current, relay reset, still open
    assert _v(fw, "F1", "I") == 0 and _v(fw, "F1", "P") == 0
    assert _v(fw, "F2/CB", "position") == 2 and _v(fw, "F2", "P") > 0  # the healthy feeder stays in


def test_high_set_and_breaker_fail_and_load_step(backend_name):
    fw = _fw(_protected(high_set=1000.0, high_set_delay=0.04), backend_name)
    rows = _run_fault(fw, ohm=1.0)
    t_op = next(r[0] for r in rows if r[2] == 1)
    assert t_op - (T0 + 0.5) == pytest.approx(0.04, abs=0.02 + 1e-6)  # definite-time high-set beats the curve
    fw2 = _fw(_protected(), backend_name)
    fw2.plant_fault(fw2.index("dev", "F1/CB:I"), "breaker_fail", 1)
    rows = _run_fault(fw2)
    assert any(r[2] == 1 for r in rows) and all(r[3] == 2 for r in rows)  # operated, never opened
    assert rows[-1][4] > 1000  # the fault current keeps flowing
    fw3 = _fw(_protected(), backend_name)
    fw3.tick(T0)
    p = _v(fw3, "F1", "P")
    fw3.plant_fault(fw3.index("dev", "F1:P"), "load_step", 1.5)
    fw3.tick(T0)
    assert _v(fw3, "F1", "P") == pytest.approx(1.5 * p, rel=0.002)
    fw3.plant_fault(fw3.index("dev", "GRID:P"), "loss_of_supply", 1)
    fw3.tick(T0)
    assert _v(fw3, "F1", "P") == 0 and _v(fw3, "BB1", "V") == 0 and _v(fw3, "GRID", "energised") == 0
    fw3.plant_fault(fw3.index("dev", "GRID:P"), "loss_of_supply", 0)
    fw3.tick(T0)
    assert _v(fw3, "F1", "P") > 0


def test_plant_events_are_checked():
    fw = _fw(_protected())
    with pytest.raises(ValueError, match="short_circuit applies to a load"):
        fw.plant_fault(fw.index("dev", "F1/CB:I"), "short_circuit", 1.0)
    with pytest.raises(ValueError, match="unknown plant event 'melt'"):
        fw.plant_fault(fw.index("dev", "F1:P"), "melt", 1.0)
    with pytest.raises(ValueError, match="expected a number >= 0"):
        fw.plant_fault(fw.index("dev", "F1:P"), "load_step", -1)


def test_c_matches_python_through_faults_and_trips(c_backend):
    c, py = _fw(_protected(4), "c", 3), _fw(_protected(4), "python", 3)
    for fw in (c, py):
        fw.plant_fault(fw.index("dev", "F2:P"), "load_step", 1.3)
    rc, rp = _run_fault(c, ohm=1.5), _run_fault(py, ohm=1.5)
    assert [r[1:4] for r in rc] == [r[1:4] for r in rp]  # same start / operate / open ticks
    _, vc, _ = c.snapshot()
    _, vp, _ = py.snapshot()
    for i in range(c.size):
        assert math.isclose(vc[i], vp[i], rel_tol=1e-5, abs_tol=1e-3), f"{c.name(i)} C {vc[i]} vs Python {vp[i]}"


# ------------------------------------------------------------------ automatic voltage control


def _with_avc(tap=3, delay=10.0, tap_time=2.0):
    import dataclasses

    from firmware_sim.plant import Avc

    plant = primary(4, seed=2, bus_section_closed=False)
    avc = Avc(target=11_100.0, band=0.015, delay=delay, tap_time=tap_time)
    plant.transformers = [dataclasses.replace(t, tap=tap, avc=avc) for t in plant.transformers]
    return plant


def test_avc_brings_the_bus_into_band_one_timed_step_at_a_time(backend_name):
    fw = _fw(_with_avc(), backend_name)
    log = []
    for s in range(240):
        fw.tick(T0 + s)
        log.append((s, _v(fw, "T1", "tap"), _v(fw, "BB1", "V"), _v(fw, "T1", "avc_state")))
    assert log[0][1] == 3 and log[0][2] < 11_100 * 0.985  # starts low, out of band
    assert log[0][3] == 2  # timing
    changes = [s for (s, tap, _, _), (_, prev, _, _) in zip(log[1:], log) if tap != prev]
    taps = [tap for _, tap, _, _ in log]
    assert all(b - a in (0, 1) for a, b in zip(taps, taps[1:]))  # one step at a time, only upwards
    assert all(b - a >= 11 for a, b in zip(changes, changes[1:]))  # delay 10 s + tap time 2 s (- one tick)
    assert changes[0] == 13  # 10 s out of band, 2 s of tap change, shown on the next tick
    final_v = log[-1][2]
    assert abs(final_v - 11_100) <= 0.015 * 11_100 and log[-1][3] == 1  # in band, idle
    assert {3} <= {st for *_, st in log}  # the tap changer was seen moving
    # manual: the relay stops acting
    _set(fw, "T1", "avc_auto", 0)
    _set(fw, "T1", "tap", 1)
    for s in range(240, 300):
        fw.tick(T0 + s)
    assert _v(fw, "T1", "tap") == 1 and _v(fw, "T1", "avc_state") == 0


def test_c_matches_python_with_avc(c_backend):
    c, py = _fw(_with_avc(tap=14), "c", 1), _fw(_with_avc(tap=14), "python", 1)
    for s in range(0, 120, 2):
        c.tick(T0 + s)
        py.tick(T0 + s)
        _, vc, _ = c.snapshot()
        _, vp, _ = py.snapshot()
        for i in range(c.size):
            assert math.isclose(vc[i], vp[i], rel_tol=1e-5, abs_tol=1e-3), f"t+{s}: {c.name(i)} C {vc[i]} vs Python {vp[i]}"
    assert c.value(c.index("dev", "T1:tap")) < 14  # lowered towards the target


def test_data_faults_apply_on_top_of_plant_values_and_runs_are_deterministic(backend_name):
    runs = []
    for _ in range(2):
        fw = _fw(_protected(), backend_name, seed=7)
        ia = fw.index("dev", "F1:I")
        fw.set_fault(ia, {"kind": "stuck", "value": 42.0})
        fw.set_fault(fw.index("dev", "F2:P"), {"kind": "offset", "value": 1000.0})
        fw.set_fault(fw.index("dev", "F1/CB:position"), {"kind": "dropout"})
        fw.tick(T0)
        p2 = fw.plan.plant  # the plant itself is untouched: F2's breaker flow is the true load
        assert p2 is not None and _v(fw, "F2", "P") == pytest.approx(_v(fw, "F2/CB", "P") + 1000.0, rel=1e-6)
        rows = _run_fault(fw)
        assert all(r[4] > 0 for r in rows[:20])  # the relay sees the true current
        assert _v(fw, "F1", "I") == 42.0  # the stuck reading stays, although the feeder tripped
        assert fw.quality(fw.index("dev", "F1/CB:position")) & 0x2  # dropout: INVALID, value frozen
        _, v, q = fw.snapshot()
        runs.append((list(v), list(q), rows))
    assert runs[0] == runs[1]  # same seed, same clock, same events: the same values


# ------------------------------------------------------------------ auto-reclose


def _timeline(fw, seconds, events, dt=0.02):
    """Tick at dt; events {time: callable}; rows of (t, position, I, ar_state) of F1's breaker."""
    rows = []
    for k in range(int(round(seconds / dt)) + 1):
        t = round(k * dt, 6)
        if t in events:
            events[t]()
        fw.tick(T0 + t)
        rows.append((t, _v(fw, "F1/CB", "position"), _v(fw, "F1", "I"), _v(fw, "F1/CB", "ar_state")))
    return rows


def _changes(rows, col):
    return [(r[0], r[col]) for prev, r in zip(rows, rows[1:]) if r[col] != prev[col]]


def test_auto_reclose_transient_fault_recloses_and_resets(backend_name):
    fw = _fw(_protected(reclose=(1.0, 10.0), reclaim=5.0), backend_name)
    f1 = fw.index("dev", "F1:P")
    rows = _timeline(fw, 9.0, {0.5: lambda: fw.plant_fault(f1, "short_circuit", 2.0),
                               1.2: lambda: fw.plant_fault(f1, "short_circuit", 0)})  # the arc clears itself
    pos = _changes(rows, 1)
    assert [p for _, p in pos] == [1, 2]  # tripped once, reclosed once
    t_trip, t_close = pos[0][0], pos[1][0]
    assert t_close - (t_trip + 0.03) == pytest.approx(1.0, abs=0.02 + 1e-6)  # dead time from the arc going out
    assert rows[-1][2] > 0  # the feeder is back on load
    ar = _changes(rows, 3)
    assert [s for _, s in ar] == [2, 3, 1]  # dead time, reclaim, ready again
    assert ar[2][0] - t_close == pytest.approx(5.0, abs=0.02 + 1e-6)


def test_auto_reclose_permanent_fault_locks_out_and_a_close_command_resets(backend_name):
    fw = _fw(_protected(reclose=(0.5, 1.0), reclaim=5.0, high_set=1000.0, high_set_delay=0.1), backend_name)
    f1 = fw.index("dev", "F1:P")
    rows = _timeline(fw, 6.0, {0.5: lambda: fw.plant_fault(f1, "short_circuit", 2.0)})
    pos = [p for _, p in _changes(rows, 1)]
    assert pos == [1, 2, 1, 2, 1]  # trip, reclose, trip, reclose, trip
    assert rows[-1][1] == 1 and rows[-1][3] == 4 and rows[-1][2] == 0  # locked out, dead
    fw.plant_fault(f1, "short_circuit", 0)  # the line is repaired
    _set(fw, "F1/CB", "position", 2)  # and closed by the operator
    fw.tick(T0 + 7)
    assert _v(fw, "F1/CB", "ar_state") == 1 and _v(fw, "F1", "I") > 0


def test_c_matches_python_through_reclose_sequences(c_backend):
    c, py = (_fw(_protected(4, reclose=(0.3, 0.6), reclaim=1.0), b, 5) for b in ("c", "python"))
    rc, rp = _run_fault(c, ohm=1.5, seconds=4.0), _run_fault(py, ohm=1.5, seconds=4.0)
    assert [r[1:4] for r in rc] == [r[1:4] for r in rp]
    assert [r[3] for r in rc].count(1) > 0 and rc[-1][3] == 1  # it tripped and ended locked out open
    assert c.value(c.index("dev", "F1/CB:ar_state")) == py.value(py.index("dev", "F1/CB:ar_state")) == 4


def test_tap_changer_runaway_and_the_avc_runaway_lockout(backend_name):
    fw = _fw(_with_avc(tap=9, delay=10.0, tap_time=2.0), backend_name)
    t1 = fw.index("dev", "T1:P")
    fw.tick(T0)
    v0 = _v(fw, "BB1", "V")
    fw.plant_fault(t1, "tap_runaway", 1)  # the motor contactor sticks, raising
    taps, states = [], []
    for s in range(1, 30):
        fw.tick(T0 + s)
        taps.append(_v(fw, "T1", "tap"))
        states.append(_v(fw, "T1", "avc_state"))
    assert taps[-1] == 10 and states[-1] == 4  # one uncommanded step, then the AVC cut the motor supply
    assert _v(fw, "BB1", "V") / v0 - 1 == pytest.approx(0.0125, abs=0.004)
    _set(fw, "T1", "avc_auto", 0)  # without its AVC the tap changer runs to the end stop
    for s in range(30, 60):
        fw.tick(T0 + s)
    assert _v(fw, "T1", "tap") == 17 and _v(fw, "T1", "avc_state") == 0
    fw.plant_fault(t1, "tap_runaway", 0)  # repaired; back in auto the relay brings the bus into band
    _set(fw, "T1", "avc_auto", 1)
    for s in range(60, 260):
        fw.tick(T0 + s)
    assert _v(fw, "T1", "tap") < 17 and _v(fw, "T1", "avc_state") in (1, 2, 3)


def test_c_matches_python_through_a_runaway(c_backend):
    c, py = (_fw(_with_avc(tap=9, delay=5.0, tap_time=1.0), b, 2) for b in ("c", "python"))
    for fw in (c, py):
        _set(fw, "T2", "avc_auto", 0)
        fw.plant_fault(fw.index("dev", "T2:P"), "tap_runaway", 2)
        fw.plant_fault(fw.index("dev", "T1:P"), "tap_runaway", 1)
    for s in range(40):
        c.tick(T0 + s)
        py.tick(T0 + s)
        _, vc, _ = c.snapshot()
        _, vp, _ = py.snapshot()
        for i in range(c.size):
            assert math.isclose(vc[i], vp[i], rel_tol=1e-5, abs_tol=1e-3), f"t+{s}: {c.name(i)} C {vc[i]} vs Python {vp[i]}"
    assert c.value(c.index("dev", "T2:tap")) == 1 and c.value(c.index("dev", "T1:avc_state")) == 4


# ------------------------------------------------------------------ unbalanced faults


def test_phase_earth_fault_is_limited_by_the_earthing_resistor_and_trips_on_earth_fault(backend_name):
    fw = _fw(_protected(earth_pickup=100.0, earth_curve="SI", earth_tms=0.1), backend_name)
    fw.tick(T0)
    load_i = _v(fw, "F1", "I")
    fw.plant_fault(fw.index("dev", "F1:P"), "short_circuit", 0.5, "phase_earth")
    fw.tick(T0 + 0.02)
    ia, ib, ic, i_n = (_v(fw, "F1", q) for q in ("I_A", "I_B", "I_C", "I_N"))
    assert 700 < i_n < 1100  # A: 6.35 ohm neutral resistor at 11.5 kV, plus 0.5 ohm of fault
    assert ia == pytest.approx(abs(complex(load_i, 0) + i_n), rel=0.25)  # the faulted phase carries load + fault
    assert ib == pytest.approx(load_i, rel=0.15) and ic == pytest.approx(load_i, rel=0.15)  # healthy phases
    assert _v(fw, "F1/CB", "I_N") == pytest.approx(i_n, rel=1e-6)  # the breaker's CTs see the same residual
    assert _v(fw, "INC1", "I_N") == pytest.approx(i_n, rel=0.02)  # back to the transformer's neutral
    assert _v(fw, "F2/CB", "I_N") == 0  # the healthy feeder sees none
    assert _v(fw, "F1/CB", "start") == 1
    for k in range(2, 200):  # the relay times out and trips; the residual current is gone
        fw.tick(T0 + 0.02 * k)
    assert _v(fw, "F1/CB", "position") == 1 and _v(fw, "F1", "I_N") == 0 and _v(fw, "INC1", "I_N") == 0


def test_earth_fault_element_alone_sees_a_high_resistance_earth_fault(backend_name):
    fw = _fw(_protected(earth_pickup=50.0, earth_curve="DT", earth_tms=0.5), backend_name)
    fw.plant_fault(fw.index("dev", "F1:P"), "short_circuit", 60.0, "phase_earth")  # through a hedge: ~100 A
    rows = []
    for k in range(60):
        fw.tick(T0 + 0.02 * k)
        rows.append((0.02 * k, _v(fw, "F1", "I_N"), max(_v(fw, "F1", q) for q in ("I_A", "I_B", "I_C")),
                     _v(fw, "F1/CB", "operate")))
    assert 60 < rows[0][1] < 150 and rows[0][2] < 400  # below the phase pickup
    t_op = next(t for t, *_, op in rows if op == 1)
    assert t_op == pytest.approx(0.5, abs=0.02 + 1e-6)  # definite time 0.5 s on the residual current


def test_phase_phase_fault_currents(backend_name):
    fw = _fw(_protected(), backend_name)
    fw.tick(T0)
    load_i = _v(fw, "F1", "I")
    fw.plant_fault(fw.index("dev", "F1:P"), "short_circuit", 2.0, "phase_phase")
    fw.tick(T0 + 0.02)
    ia, ib, ic, i_n = (_v(fw, "F1", q) for q in ("I_A", "I_B", "I_C", "I_N"))
    assert ib > 1000 and ic > 1000 and ib == pytest.approx(ic, rel=0.2)  # the faulted pair
    assert i_n == 0 and load_i * 0.8 < ia < 2 * load_i  # the healthy phase carries load only (more in the dip)
    assert _v(fw, "F1/CB", "start") == 1  # the phase element sees it


def test_c_matches_python_through_unbalanced_faults(c_backend):
    c, py = (_fw(_protected(4, earth_pickup=100.0), b, 9) for b in ("c", "python")) 
    for fw in (c, py):
        fw.plant_fault(fw.index("dev", "F2:P"), "short_circuit", 1.0, "phase_phase")
    rc, rp = _run_fault(c, ohm=1.0, event="load_step"), _run_fault(py, ohm=1.0, event="load_step")
    assert [r[1:4] for r in rc] == [r[1:4] for r in rp]
    for fw in (c, py):
        fw.plant_fault(fw.index("dev", "F3:P"), "short_circuit", 0.3, "phase_earth")
        fw.tick(T0 + 10)
    _, vc, _ = c.snapshot()
    _, vp, _ = py.snapshot()
    for i in range(c.size):
        assert math.isclose(vc[i], vp[i], rel_tol=1e-5, abs_tol=1e-3), f"{c.name(i)} C {vc[i]} vs Python {vp[i]}"


def test_line_drop_compensation_raises_the_bus_under_load(backend_name):
    import dataclasses

    from firmware_sim.plant import Avc

    def run(ldc_r):
        plant = primary(4, seed=2, bus_section_closed=False)
        avc = Avc(target=11_000.0, band=0.01, delay=10.0, tap_time=2.0, ldc_r=ldc_r, ldc_x=ldc_r)
        plant.transformers = [dataclasses.replace(t, tap=9, avc=avc) for t in plant.transformers]
        fw = _fw(plant, backend_name)
        for s in range(200):
            fw.tick(T0 + s)
        return _v(fw, "T1", "tap"), _v(fw, "BB1", "V")

    tap0, v0 = run(0.0)
    tap1, v1 = run(0.6)  # regulate ~0.6+j0.6 ohm down the feeders: the bus must sit higher
    assert abs(v0 - 11_000) <= 0.01 * 11_000
    assert tap1 > tap0 and v1 > v0 * 1.01


def test_c_matches_python_with_line_drop_compensation(c_backend):
    import dataclasses

    from firmware_sim.plant import Avc

    plant = primary(4, seed=2, bus_section_closed=True)
    avc = Avc(target=11_000.0, band=0.01, delay=5.0, tap_time=1.0, ldc_r=0.5, ldc_x=0.8)
    plant.transformers = [dataclasses.replace(t, avc=avc) for t in plant.transformers]
    c, py = _fw(plant, "c"), _fw(plant, "python")
    for s in range(0, 120, 2):
        c.tick(T0 + s)
        py.tick(T0 + s)
    _, vc, _ = c.snapshot()
    _, vp, _ = py.snapshot()
    for i in range(c.size):
        assert math.isclose(vc[i], vp[i], rel_tol=1e-5, abs_tol=1e-3), f"{c.name(i)} C {vc[i]} vs Python {vp[i]}"
