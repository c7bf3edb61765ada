"""CGMES export of the example site, read back by rdflib (independent of the lxml writer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import RDF

from gateway.cgmes.export import export
from gateway.cim import build_catalog
from gateway.cli import main
from gateway.config import load_config
from tests.cgmes.rdfcheck import CIM, adjacency, enum, graph, lit, mrid, one, reachable, typed

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"


@pytest.fixture(scope="module")
def cfg():
    return load_config(EXAMPLE)


@pytest.fixture(scope="module")
def g(cfg):
    return graph(export(cfg)["eq"])


def _measurements(g):
    return [m for c in ("Analog", "Discrete", "Accumulator") for m in typed(g, c)]


def test_every_measurement_has_psr_and_terminal_and_the_catalogs_mrid(cfg, g):
    catalog = {e.measurement["mRID"]: e for e in build_catalog(cfg).values()}
    ms = _measurements(g)
    assert len(ms) == len(catalog) == 113
    seen = set()
    for m in ms:
        mr = mrid(g, m)
        entry = catalog[mr]  # KeyError: an mRID the MQTT catalog does not publish
        seen.add(mr)
        psr = one(g, m, "Measurement.PowerSystemResource")
        assert mrid(g, psr) == entry.measurement["powerSystemResource"]["mRID"]
        assert str(one(g, psr, "IdentifiedObject.name")) == entry.measurement["powerSystemResource"]["name"]
        term = one(g, m, "Measurement.Terminal")
        assert mrid(g, one(g, term, "Terminal.ConductingEquipment")) == mrid(g, psr)
        assert CIM[entry.kind] in set(g.objects(m, RDF.type))
        want_type = {"Voltage": "LineToLineVoltage"}.get(entry.measurement_type, entry.measurement_type)
        assert lit(g, m, "Measurement.measurementType").removeprefix("x-gridgate:") == want_type
        assert lit(g, m, "Measurement.measurementType") == entry.measurement["cimMeasurementType"]  # the MQTT catalog's
        assert enum(g, m, "Measurement.unitSymbol") == entry.measurement["unitSymbol"]
        assert enum(g, m, "Measurement.unitMultiplier") == entry.measurement["unitMultiplier"]
        assert enum(g, m, "Measurement.phases") == entry.measurement["phases"]
        assert lit(g, m, "IdentifiedObject.name") == entry.measurement["name"]
    assert seen == set(catalog)
    assert lit(g, next(m for m in ms if lit(g, m, "IdentifiedObject.name") == "PTOC_Str"),
               "Measurement.measurementType") == "x-gridgate:ProtectionStart"


def test_containment_and_base_voltage_from_the_bays(cfg, g):
    levels = {lit(g, v, "IdentifiedObject.name"): v for v in typed(g, "VoltageLevel")}
    assert set(levels) == {"33kV", "11kV"}
    for name, v in levels.items():
        assert lit(g, one(g, v, "VoltageLevel.BaseVoltage"), "BaseVoltage.nominalVoltage") == name.removesuffix("kV")
        assert lit(g, one(g, v, "VoltageLevel.Substation"), "IdentifiedObject.name") == "KGM"
    bays = {lit(g, b, "IdentifiedObject.name"): b for b in typed(g, "Bay")}
    assert len(bays) == sum(len(sub.bays) for sub in cfg.substations)  # 12: GRID, T1, T2, INC1, INC2, BS, F1-F6
    for s in cfg.substations:
        for b in s.bays:
            vl = one(g, bays[b.name], "Bay.VoltageLevel")
            assert lit(g, vl, "IdentifiedObject.name") == f"{b.voltage_kv:g}kV"
            for e in b.equipment:
                cls = "ExternalNetworkInjection" if e.type == "EnergySource" else e.type  # CGMES's grid infeed
                el = next(x for x in typed(g, cls) if mrid(g, x) == str(cfg.equipment_mrid(f"{s.name}/{b.name}/{e.name}")))
                assert one(g, el, "Equipment.EquipmentContainer") == bays[b.name]
    assert len(typed(g, "Breaker")) == 11 and len(typed(g, "ACLineSegment")) == 6
    ends = typed(g, "PowerTransformerEnd")
    assert sorted(lit(g, e, "PowerTransformerEnd.ratedU") for e in ends) == ["11", "11", "33", "33"]
    taps = typed(g, "RatioTapChanger")
    assert len(taps) == 2 and {(lit(g, t, "TapChanger.lowStep"), lit(g, t, "TapChanger.highStep")) for t in taps} == {("1", "17")}
    # the site names its own 33 kV supply (GRID/SRC): exported as the grid infeed with its mRID, none derived
    (eni,) = typed(g, "ExternalNetworkInjection")
    assert mrid(g, eni) == str(cfg.equipment_mrid("KGM/GRID/SRC"))


def test_topology_connects_every_feeder_to_the_33kv_source_through_its_breakers(cfg, g):
    path = lambda p: str(cfg.equipment_mrid(p))  # noqa: E731
    source = mrid(g, typed(g, "ExternalNetworkInjection")[0])
    feeders = {f"F{i}": path(f"KGM/F{i}/FDR") for i in range(1, 7)}
    closed = reachable(adjacency(g), source)
    assert set(feeders.values()) <= closed
    for f, fdr in feeders.items():  # the feeder's own breaker is the only way out
        assert fdr not in reachable(adjacency(g, {path(f"KGM/{f}/CB")}), source)
    # bus section open: F1-F3 hang on INC1 and T1's HV breaker only, F4-F6 on INC2 and T2's
    for side, fs in (("1", ("F1", "F2", "F3")), ("2", ("F4", "F5", "F6"))):
        other = "2" if side == "1" else "1"
        for cut in (f"KGM/INC{side}/CB", f"KGM/T{side}/HVCB"):
            live = reachable(adjacency(g, {path("KGM/BS/CB"), path(cut)}), source)
            assert not {feeders[f] for f in fs} & live, f"{fs} still fed with {cut} and BS open"
        live = reachable(adjacency(g, {path("KGM/BS/CB"), path(f"KGM/INC{other}/CB")}), source)
        assert {feeders[f] for f in fs} <= live


def test_separate_operation_profile_and_cli(tmp_path, cfg):
    out = tmp_path / "kgm-eq.xml"
    assert main(["cim", "export", str(EXAMPLE), "-o", str(out), "--profiles", "eq,op"]) == 0
    eq, op = out.read_bytes(), (tmp_path / "kgm-op.xml").read_bytes()
    g_eq, g_op = graph(eq), graph(op)
    assert not _measurements(g_eq) and len(_measurements(g_op)) == 113
    assert b"Operation-EU/3.0" in op and b"Operation-EU" not in eq
    both = graph(eq, op)  # the OP profile's references resolve into the EQ profile
    for m in _measurements(both):
        assert typed(both, "Terminal") and mrid(both, one(both, m, "Measurement.PowerSystemResource"))
    assert main(["cim", "export", str(EXAMPLE), "-o", str(tmp_path / "one.xml")]) == 0
    assert len(_measurements(graph((tmp_path / "one.xml").read_bytes()))) == 113


def test_export_is_stable_run_to_run(cfg):
    from datetime import datetime, timezone

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert export(cfg, now=t)["eq"] == export(cfg, now=t)["eq"]


def test_bay_without_voltage_is_an_error_naming_the_bay(tmp_path, capsys):
    import yaml

    data = yaml.safe_load(EXAMPLE.read_text())
    f1 = next(b for b in data["substations"][0]["bays"] if b["name"] == "F1")
    del f1["voltage_level"]
    p = tmp_path / "site.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["cim", "export", str(p), "-o", str(tmp_path / "x.xml")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    (err,) = [x for x in lines if not x.startswith("note: ")]
    assert err.startswith("error: ") and "F1" in err and "voltage_level" in err
