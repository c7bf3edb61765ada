"""Bad plant input in a site file: a clear error naming the YAML place and the fix, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.site.load import ConfigError

EXAMPLE = (Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml").read_text()


def errors(tmp_path: Path, *edits: tuple[str, str]) -> str:
    text = EXAMPLE
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    f = tmp_path / "site.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert "Traceback" not in msg and msg.startswith(f"{f}: ")
    return msg


def test_example_plant_loads(tmp_path):
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml")
    plant = cfg.plant.runtime()
    assert len(plant.transformers) == 2 and len(plant.loads) == 6
    assert [s.closed for s in plant.switches if s.name == "KGM/BS/CB"] == [True]  # normally closed, as the header says
    t1 = plant.transformers[0]
    assert (t1.tap_min, t1.neutral, t1.tap_max, t1.step) == (1, 9, 17, 0.0125)  # ±10 % in 17 steps
    assert (t1.avc.target, t1.avc.band, t1.avc.delay, t1.avc.tap_time) == (11_100.0, 0.015, 60.0, 5.0)
    f1 = next(s for s in plant.switches if s.name == "KGM/F1/CB")
    assert f1.operate_time == 0.06 and f1.protection.pickup == 400 and f1.protection.curve == "SI"
    assert f1.protection.high_set == 5000 and f1.protection.high_set_delay == 0.05
    f6 = next(s for s in plant.switches if s.name == "KGM/F6/CB")
    assert f1.protection.earth_pickup == 100 and t1.earthing == 6.35
    assert f6.protection.reclose == (3.0, 15.0) and f6.protection.reclaim == 30.0 and f1.protection.reclose == ()


def test_bad_tap_changer_and_relay_settings(tmp_path):
    msg = errors(tmp_path, ("neutral: 9, step_pct: 1.25, initial: 9,\n", "neutral: 9, step_pct: 1.25, initial: 19,\n"),
                 ("high_set_delay: 50ms,\n                                   earth", "high_set_delay: soon,\n                                   earth"))
    assert re.search(r"plant\.transformers\[0\]\.tap_changer.*initial tap 19 is outside min..max \(1..17\)", msg), msg
    assert re.search(r"plant\.switches\[5\]\.protection\.high_set_delay.*expected a time such as 60ms", msg), msg


def test_a_feeder_without_a_path_to_the_source(tmp_path):
    msg = errors(tmp_path, ("{equipment: KGM/F6/CB, from: BB2, to: F6,", "{equipment: KGM/F6/CB, from: BB2, to: F6X,"))
    assert re.search(r"plant\.loads\[5\]\.node.*KGM/F6/FDR at node 'F6' has no path to the source; connect the node", msg), msg


def test_a_loop_of_switches(tmp_path):
    msg = errors(tmp_path, ("{equipment: KGM/F3/CB, from: BB1, to: F3,", "{equipment: KGM/F3/CB, from: BB1, to: BB2,"))
    assert re.search(r"plant\.switches\[\d+\].*closes a loop of switches", msg), msg
    assert "remove the switch or split a node" in msg


def test_a_transformer_off_the_source_voltage(tmp_path):
    msg = errors(tmp_path, ("hv: T1_HV, lv: T1_LV, rating_mva: 15, hv_kv: 33,", "hv: T1_HV, lv: T1_LV, rating_mva: 15, hv_kv: 132,"))
    assert re.search(r"plant\.transformers\[0\]\.hv_kv.*132.0 kV does not match the source's 33.0 kV", msg), msg


def test_unknown_equipment_and_impossible_quantity_in_plant_points(tmp_path):
    msg = errors(
        tmp_path,
        ("{name: BB1_V, group: analog, index: 6, event_class: 2, scale: 0.001, deadband: 0.02,\n"
         "         measurement: {equipment: KGM/BS/BB1, type: Voltage, multiplier: k, phases: AB},\n"
         "         signal: {kind: plant, equipment: KGM/BS/BB1, quantity: V",
         "{name: BB1_V, group: analog, index: 6, event_class: 2, scale: 0.001, deadband: 0.02,\n"
         "         measurement: {equipment: KGM/BS/BB1, type: Voltage, multiplier: k, phases: AB},\n"
         "         signal: {kind: plant, equipment: KGM/BS/BB1, quantity: P"),
        ("signal: {kind: plant, equipment: KGM/F6/CB, quantity: position}",
         "signal: {kind: plant, equipment: KGM/F6/BREAKER, quantity: position}"),
    )
    assert re.search(r"devices\[2\]\.points\[6\]\.signal\.quantity.*busbar 'KGM/BS/BB1' has no quantity 'P'; use one of V, F, energised", msg), msg
    assert re.search(r"devices\[8\]\.points\[\d+\]\.signal\.equipment.*no plant equipment 'KGM/F6/BREAKER'", msg), msg


def test_plant_equipment_must_be_site_equipment_of_the_right_type(tmp_path):
    msg = errors(tmp_path, ("- {equipment: KGM/BS/BB2, node: BB2}", "- {equipment: KGM/F9/BB, node: BB2}"))
    assert re.search(r"plant\.busbars\[1\]\.equipment.*'KGM/F9/BB' is not a substation/bay/equipment of this site", msg), msg
    msg = errors(tmp_path, ("- {equipment: KGM/BS/BB1, node: BB1}", "- {equipment: KGM/T1/TX, node: BB1}"))
    assert re.search(r"plant\.busbars\[0\]\.equipment.*already used by plant\.transformers\[0\]", msg), msg


def test_plant_equipment_type_is_checked(tmp_path):
    msg = errors(tmp_path, ("{equipment: KGM/F1/FDR, node: F1,", "{equipment: KGM/F1/CB, node: F1,"),
                 ("{equipment: KGM/F1/CB, from: BB1, to: F1,", "{equipment: KGM/F1/FDR, from: BB1, to: F1,"))
    assert re.search(r"plant\.switches\[5\]\.equipment: KGM/F1/FDR is of type ACLineSegment; a plant switch must be of type Breaker", msg), msg
    assert re.search(r"plant\.loads\[0\]\.equipment: KGM/F1/CB is of type Breaker; a plant load must be of type ACLineSegment or EnergyConsumer", msg), msg


def test_plant_points_need_a_plant(tmp_path):
    text = EXAMPLE
    start, end = text.index("plant:\n"), text.index("# Each point:")
    f = tmp_path / "site.yaml"
    f.write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert "needs the site's `plant:` section; add it or use another signal kind" in str(e.value)


def test_a_normally_open_point_between_feeders_is_refused_with_the_way_out(tmp_path):
    msg = errors(tmp_path, ("  busbars:\n    - {equipment: KGM/BS/BB1, node: BB1}",
                            "    - {equipment: KGM/F1/NOP, from: F1, to: F4, normal: open}\n"
                            "  busbars:\n    - {equipment: KGM/BS/BB1, node: BB1}"),
                 ("          - {name: FDR, type: ACLineSegment, description: Kingsmead Road}",
                  "          - {name: FDR, type: ACLineSegment, description: Kingsmead Road}\n"
                  "          - {name: NOP, type: LoadBreakSwitch, description: open point to F4}"))
    assert re.search(r"plant\.switches\[11\].*KGM/F1/NOP closes a loop of switches \(F1 - F4\); gridgate solves radial "
                     r"networks and transformers in parallel at a busbar", msg), msg
    assert "A normally open point between feeders is not supported yet: leave it out of the plant" in msg


def test_a_load_on_the_33kv_network_and_parallel_transformers_of_different_lv_voltage(tmp_path):
    msg = errors(tmp_path, ("{equipment: KGM/F6/FDR, node: F6,", "{equipment: KGM/F6/FDR, node: HV33,"),
                 ("hv: T2_HV, lv: T2_LV, rating_mva: 15, hv_kv: 33, lv_kv: 11.5,",
                  "hv: T2_HV, lv: T2_LV, rating_mva: 15, hv_kv: 33, lv_kv: 6.9,"))
    assert re.search(r"plant\.loads\[5\]\.node.*load KGM/F6/FDR at node 'HV33' is on the source's 33 kV network; "
                     r"gridgate feeds loads through a transformer", msg), msg
    assert re.search(r"plant\.transformers\[1\]\.lv_kv.*6.9 kV, but switches can parallel its LV side with "
                     r"transformers\[0\] \(11.5 kV\)", msg), msg


def test_example_point_names_say_their_unit():
    """A name that carries a unit or a quantity (…KWh, Hz, …_V, P, Ia) matches its measurement's type and multiplier."""
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml")
    rules = [(r"KWH$", {"ActiveEnergy"}, "k"), (r"MWH$", {"ActiveEnergy"}, "M"), (r"^HZ$", {"Frequency"}, "none"),
             (r"(^|_)P$", {"ThreePhaseActivePower"}, "k"), (r"(^|_)Q$", {"ThreePhaseReactivePower"}, "k"),
             (r"(^|_)S$", {"ThreePhasePower", "ThreePhaseApparentPower"}, "k"), (r"_V$", {"Voltage"}, None),
             (r"^VAB$", {"Voltage"}, "none"), (r"^VA$", {"PhaseVoltage"}, "none"), (r"_TAP$", {"TapPosition"}, "none"),
             (r"^I[ABC]$", {"LineCurrent"}, "none"), (r"_AVC_", {"Automatic", "AvcState", "AvcInBand", "AvcRaisePending",
                                                                 "AvcLowerPending", "AvcTimeDelay", "AvcBlocked", "AvcLockout"}, "none")]
    checked = 0
    for d in cfg.devices:
        for p in d.points:
            for pat, types, mult in rules:
                if re.search(pat, p.name.upper()):
                    m = p.measurement
                    assert m.type in types and (mult is None or m.multiplier == mult), (d.name, p.name, m.type, m.multiplier)
                    checked += 1
                    break
    assert checked >= 89  # all but the breaker positions and protection flags, whose names carry no unit
