"""VoltageLevel and BaseVoltage in the site model (issue 16, item 3): declared levels with limits and
mRIDs, bays that belong to one, old files whose levels are derived (and say so), bad references
named by their YAML path, and the levels carried through CGMES export and import (rdflib reads back)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from gateway.cgmes.export import export
from gateway.cgmes.topology import derive
from gateway.cgmes.vocab import derived
from gateway.cli import main
from gateway.config import ConfigError, load_config
from tests.cgmes.rdfcheck import adjacency, graph, lit, mrid, one, reachable, typed

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"
HV_MRID = "4d1f6a2e-5b1c-4c55-9a44-33aa00000033"


def _old() -> dict:
    """The example site written the old way: no voltage_levels, each bay with its voltage_kv."""
    data = yaml.safe_load(EXAMPLE.read_text())
    sub = data["substations"][0]
    kv = {v["name"]: v["base_voltage_kv"] for v in sub.pop("voltage_levels")}
    for b in sub["bays"]:
        b["voltage_kv"] = kv[b.pop("voltage_level")]
    return data


def _old_path(tmp_path: Path) -> Path:
    return _write(tmp_path, _old(), "old-site.yaml")


def _declared() -> dict:
    """The example site with its voltage levels declared: new names, an mRID, statutory limits."""
    data = _old()
    sub = data["substations"][0]
    sub["voltage_levels"] = [
        {"name": "KGM-33", "base_voltage_kv": 33, "high_limit_kv": 34.98, "low_limit_kv": 31.02, "mrid": HV_MRID,
         "description": "33 kV switchboard"},
        {"name": "KGM-11", "base_voltage_kv": 11, "high_limit_kv": 11.66, "low_limit_kv": 10.34},
    ]
    for b in sub["bays"]:
        kv = b.pop("voltage_kv")
        if b["name"] != "BS":  # BS keeps only its voltage_kv: the one level of 11 kV is found from it
            b["voltage_level"] = "KGM-33" if kv == 33 else "KGM-11"
        else:
            b["voltage_kv"] = kv
    return data


def _write(tmp_path: Path, data: dict, name: str = "site.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_declared_levels_give_bays_their_voltage(tmp_path):
    cfg = load_config(_write(tmp_path, _declared()))
    s = cfg.substations[0]
    assert not s.levels_derived and [v.name for v in s.levels()] == ["KGM-33", "KGM-11"]
    bays = {b.name: b for b in s.bays}
    assert (bays["T1"].voltage_level, bays["T1"].voltage_kv) == ("KGM-33", 33)
    assert (bays["F4"].voltage_level, bays["F4"].voltage_kv) == ("KGM-11", 11)
    assert (bays["BS"].voltage_level, bays["BS"].voltage_kv) == ("KGM-11", 11)
    old = load_config(_old_path(tmp_path)).substations[0]
    assert old.levels_derived and [(v.name, v.base_voltage_kv) for v in old.levels()] == [("33kV", 33), ("11kV", 11)]


@pytest.mark.parametrize("change, where, says", [
    (lambda d: d["substations"][0]["bays"][3].update(voltage_level="KGM-66"), "substations[0].bays[3].voltage_level",
     "no voltage level 'KGM-66' in substation KGM; use one of: KGM-33, KGM-11"),
    (lambda d: d["substations"][0]["bays"][3].update(voltage_kv=33), "substations[0].bays[3].voltage_kv",
     "33 kV disagrees with voltage level KGM-11 (11 kV); drop voltage_kv"),
    (lambda d: d["substations"][0]["bays"][3].pop("voltage_level"), "substations[0].bays[3].voltage_level",
     "bay INC1 belongs to no voltage level; set one of: KGM-33, KGM-11"),
    (lambda d: d["substations"][0]["voltage_levels"].append({"name": "KGM-11", "base_voltage_kv": 11}),
     "substations[0].voltage_levels[2].name", "'KGM-11' is used twice"),
    (lambda d: d["substations"][0]["voltage_levels"][1].update(high_limit_kv=10.5), "substations[0].voltage_levels[1].high_limit_kv",
     "10.5 kV is below the base voltage 11 kV"),
])
def test_bad_level_references_name_the_yaml_path(tmp_path, change, where, says):
    data = _declared()
    change(data)
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, data))
    (line,) = [p for p in e.value.problems if p.startswith(where)]
    assert says in line and "(line " in line


def test_level_named_without_any_declared(tmp_path):
    data = _old()
    data["substations"][0]["bays"][0]["voltage_level"] = "33kV"
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, data))
    assert any(p.startswith("substations[0].bays[0].voltage_level: substation KGM declares no voltage_levels") for p in e.value.problems)


def test_old_file_is_valid_and_says_its_levels_are_derived(tmp_path, capsys):
    assert main(["validate", str(_old_path(tmp_path))]) == 0
    out = capsys.readouterr()
    assert "OK" in out.out and "note: substation KGM: no voltage_levels; derived 33kV, 11kV from the bays' voltage_kv" in out.err
    assert "note: 6 points use measurement type Voltage, gridgate v1's name for a line-to-line voltage" in out.err
    assert main(["validate", "--json", str(_old_path(tmp_path))]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert len(notes) == 2 and notes[0].startswith("substation KGM: no voltage_levels; derived 33kV, 11kV")
    assert main(["validate", str(_write(tmp_path, _declared()))]) == 0
    assert "voltage_levels" not in capsys.readouterr().err


def test_export_uses_the_declared_levels(tmp_path):
    cfg = load_config(_write(tmp_path, _declared()))
    g = graph(export(cfg)["eq"])
    levels = {lit(g, v, "IdentifiedObject.name"): v for v in typed(g, "VoltageLevel")}
    assert set(levels) == {"KGM-33", "KGM-11"}
    hv, lv = levels["KGM-33"], levels["KGM-11"]
    assert mrid(g, hv) == HV_MRID and lit(g, hv, "IdentifiedObject.description") == "33 kV switchboard"
    assert mrid(g, lv) == str(derived("KINGSMEAD", "KGM/KGM-11"))
    assert (lit(g, hv, "VoltageLevel.highVoltageLimit"), lit(g, hv, "VoltageLevel.lowVoltageLimit")) == ("34.98", "31.02")
    assert (lit(g, lv, "VoltageLevel.highVoltageLimit"), lit(g, lv, "VoltageLevel.lowVoltageLimit")) == ("11.66", "10.34")
    bases = {lit(g, b, "BaseVoltage.nominalVoltage"): b for b in typed(g, "BaseVoltage")}
    assert set(bases) == {"33", "11"} and one(g, hv, "VoltageLevel.BaseVoltage") == bases["33"]
    for b in typed(g, "Bay"):
        want = "KGM-33" if lit(g, b, "IdentifiedObject.name") in ("GRID", "T1", "T2") else "KGM-11"
        assert lit(g, one(g, b, "Bay.VoltageLevel"), "IdentifiedObject.name") == want
    # the topology is the old file's: naming the levels moves nothing (the implicit 33 kV bus takes the level's name)
    old = load_config(_old_path(tmp_path))
    renamed = {p: [n.replace("KGM/KGM-33/", "KGM/33kV/") for n in ns] for p, ns in derive(cfg).terminals.items()}
    assert renamed == derive(old).terminals and "KGM/KGM-33/BUS" in derive(cfg).nodes
    source = mrid(g, typed(g, "ExternalNetworkInjection")[0])
    assert str(cfg.equipment_mrid("KGM/F6/FDR")) in reachable(adjacency(g), source)


def test_levels_round_trip_through_cgmes(tmp_path):
    data = _declared()  # with a level that has no bays yet: still a VoltageLevel of the model
    data["substations"][0]["voltage_levels"].append({"name": "KGM-LV", "base_voltage_kv": 0.4, "description": "spare"})
    cfg = load_config(_write(tmp_path, data))
    (tmp_path / "eq.xml").write_bytes(export(cfg)["eq"])
    assert main(["cim", "import", str(tmp_path / "eq.xml"), "-o", str(tmp_path / "back.yaml")]) == 0
    back = load_config(tmp_path / "back.yaml")
    key = lambda v: (v.name, v.base_voltage_kv, v.high_limit_kv, v.low_limit_kv)  # noqa: E731
    (s,), (b,) = cfg.substations, back.substations
    assert [key(v) for v in b.voltage_levels] == [key(v) for v in s.voltage_levels]
    assert b.voltage_levels[0].mrid == uuid.UUID(HV_MRID) and b.voltage_levels[1].mrid == derived("KINGSMEAD", "KGM/KGM-11")
    assert [(x.name, x.voltage_level) for x in b.bays] == [(x.name, x.voltage_level) for x in s.bays]
    raw = yaml.safe_load((tmp_path / "back.yaml").read_text())["substations"][0]
    assert all("voltage_kv" not in x for x in raw["bays"])  # the level gives it
    # an old file: the import declares the levels the export derived, with the same mRIDs
    (tmp_path / "old.xml").write_bytes(export(load_config(_old_path(tmp_path)))["eq"])
    assert main(["cim", "import", str(tmp_path / "old.xml"), "-o", str(tmp_path / "old.yaml")]) == 0
    levels = load_config(tmp_path / "old.yaml").substations[0].voltage_levels
    assert [(v.name, v.mrid) for v in levels] == [("33kV", derived("KINGSMEAD", "KGM/33kV")), ("11kV", derived("KINGSMEAD", "KGM/11kV"))]


BV33 = "4d1f6a2e-5b1c-4c55-9a44-33aa0000bb33"


def test_site_base_voltages_are_exported_and_checked(tmp_path):
    data = _declared()
    data["site"]["base_voltages"] = [{"nominal_kv": 33, "name": "BV-33", "mrid": BV33}, {"nominal_kv": 11}, {"nominal_kv": 0.4}]
    cfg = load_config(_write(tmp_path, data))
    g = graph(export(cfg)["eq"])
    bases = {lit(g, b, "BaseVoltage.nominalVoltage"): b for b in typed(g, "BaseVoltage")}
    assert set(bases) == {"33", "11", "0.4"}  # 0.4 kV: declared, used by no level, still the site's
    assert (mrid(g, bases["33"]), lit(g, bases["33"], "IdentifiedObject.name")) == (BV33, "BV-33")
    assert mrid(g, bases["11"]) == str(derived("KINGSMEAD", "BaseVoltage", "11kV"))
    hv = next(v for v in typed(g, "VoltageLevel") if lit(g, v, "IdentifiedObject.name") == "KGM-33")
    assert mrid(g, one(g, hv, "VoltageLevel.BaseVoltage")) == BV33
    tx_ends = {lit(g, e, "PowerTransformerEnd.ratedU"): mrid(g, one(g, e, "TransformerEnd.BaseVoltage"))
               for e in typed(g, "PowerTransformerEnd")}
    assert tx_ends["33"] == BV33
    # a level at a voltage the site does not declare, a voltage declared twice: named by their YAML paths
    data["site"]["base_voltages"] = [{"nominal_kv": 33}, {"nominal_kv": 33}]
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, data))
    assert any(p.startswith("site.base_voltages[1].nominal_kv: 33 kV is declared twice") for p in e.value.problems)
    data["site"]["base_voltages"] = [{"nominal_kv": 33}]
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, data))
    assert any(p.startswith("substations[0].voltage_levels[1].base_voltage_kv: 11 kV is not one of site.base_voltages (33 kV)")
               for p in e.value.problems)
    old = _old()
    old["site"]["base_voltages"] = [{"nominal_kv": 33}]
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, old))
    assert any(p.startswith("substations[0].bays[3].voltage_kv: 11 kV is not one of site.base_voltages") for p in e.value.problems)


def test_foreign_model_levels_and_base_voltages_are_imported(tmp_path):
    model = Path(__file__).parent / "data" / "brookfield-eq.xml"
    assert main(["cim", "import", str(model), "-o", str(tmp_path / "brk.yaml")]) == 0
    cfg = load_config(tmp_path / "brk.yaml")
    u = "0b5e0000-0000-4000-8000-{:012d}".format
    assert [(b.name, b.nominal_kv, str(b.mrid)) for b in cfg.site.base_voltages] == [("33_kV", 33, u(30)), ("11_kV", 11, u(31))]
    (s,) = cfg.substations
    assert [(v.name, v.base_voltage_kv, v.high_limit_kv, v.low_limit_kv, str(v.mrid)) for v in s.voltage_levels] == [
        ("BRK_33kV", 33, None, None, u(40)), ("BRK_11kV", 11, 11.6, 10.4, u(41))]
    assert {b.name: b.voltage_level for b in s.bays} == {"HV1": "BRK_33kV", "INC": "BRK_11kV", "FDR_1": "BRK_11kV",
                                                        "FDR2": "BRK_11kV", "GEN": "BRK_11kV", "BRK_11kV": "BRK_11kV"}
    # exported again: the model's own level and base voltage mRIDs
    g = graph(export(cfg)["eq"])
    assert {mrid(g, v) for v in typed(g, "VoltageLevel")} == {u(40), u(41)}
    assert {mrid(g, b) for b in typed(g, "BaseVoltage")} == {u(30), u(31)}


def test_two_levels_of_one_voltage_take_a_transformer_each(tmp_path):
    """Two 11 kV switchboards: T1 feeds the first, T2 the second (file order), each through its incomer."""
    data = _declared()
    sub = data["substations"][0]
    sub["voltage_levels"][1:] = [{"name": "SWB-A", "base_voltage_kv": 11}, {"name": "SWB-B", "base_voltage_kv": 11}]
    for b in sub["bays"]:
        b.pop("voltage_kv", None)
        if b["name"] not in ("GRID", "T1", "T2"):
            b["voltage_level"] = "SWB-B" if b["name"] in ("INC2", "F4", "F5", "F6") else "SWB-A"
    cfg = load_config(_write(tmp_path, data))
    lay = derive(cfg)
    assert lay.transformer_levels["KGM/T1/TX"] == ["KGM/KGM-33", "KGM/SWB-A"]
    assert lay.transformer_levels["KGM/T2/TX"] == ["KGM/KGM-33", "KGM/SWB-B"]
    assert lay.terminals["KGM/INC2/CB"] == ["KGM/T2/TX/LV", "KGM/SWB-B/BUS"]  # SWB-B has no busbar: its implicit one
    g = graph(export(cfg)["eq"])
    path = lambda p: str(cfg.equipment_mrid(p))  # noqa: E731
    source = mrid(g, typed(g, "ExternalNetworkInjection")[0])
    assert {path(f"KGM/F{i}/FDR") for i in range(1, 7)} <= reachable(adjacency(g), source)
    live = reachable(adjacency(g, {path("KGM/T2/HVCB")}), source)  # T2 out: SWB-B dark, SWB-A still fed
    assert path("KGM/F4/FDR") not in live and path("KGM/F1/FDR") in live
