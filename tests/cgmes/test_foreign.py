"""Import of a CGMES model gridgate did not write (hand-built, CGMES 2.4.15 namespace and conventions)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.cgmes.export import export
from gateway.cgmes.importer import build_site
from gateway.cgmes.model import read
from gateway.cli import main
from gateway.config import load_config
from tests.cgmes.rdfcheck import adjacency, graph, mrid, reachable, typed

MODEL = Path(__file__).parent / "data" / "brookfield-eq.xml"


def U(n: int) -> str:
    return f"0b5e0000-0000-4000-8000-{n:012d}"


def test_foreign_model_imports_with_ignored_classes_reported(tmp_path, capsys):
    out = tmp_path / "brk.yaml"
    assert main(["cim", "import", str(MODEL), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("ignored: CoordinateSystem ×1, CurrentLimit ×1, Location ×1, OperationalLimitSet ×1, OperationalLimitType ×1,"
            " PositionPoint ×1") in err
    assert f"unsupported equipment SynchronousMachine 'CHP set' (mRID {U(151)}) skipped" in err
    assert f"Analog 'CHP MW' (mRID {U(306)}) skipped" in err
    assert f"Analog 'GT1 oil level' (mRID {U(310)}) skipped: measurementType 'OilLevel'" in err
    assert f"Analog 'FDR1 earth leakage' (mRID {U(309)}) skipped: unitMultiplier m is not one gridgate publishes" in err
    assert "error" not in err and "topology" not in err  # the model's connectivity is what gridgate derives
    cfg = load_config(out)
    assert cfg.site.operator == "Example DNO"
    bays = {b.name: b for b in cfg.substations[0].bays}
    assert {n: [(e.name, e.type) for e in b.equipment] for n, b in bays.items()} == {
        "HV1": [("HV1_DS", "Disconnector"), ("HV1_CB", "Breaker"), ("GT1", "PowerTransformer")],
        "INC": [("INC_CB", "Breaker")],
        "FDR_1": [("FDR1_CB", "Breaker"), ("Mill_Lane_cable", "ACLineSegment")],
        "FDR2": [("FDR2_LBS", "LoadBreakSwitch"), ("Works_load", "EnergyConsumer")],
        "GEN": [("GEN_CB", "Breaker")],
        "BRK_11kV": [("11kV_BB", "BusbarSection")],  # the busbar sat directly in the voltage level
    }
    assert bays["HV1"].voltage_kv == 33 and bays["BRK_11kV"].voltage_kv == 11
    points = {str(cfg.measurement_mrid(p)): (d, p) for d in cfg.devices for p in d.points}
    assert set(points) == {U(n) for n in (300, 301, 302, 303, 304, 305, 307, 308)}
    temp = points[U(307)][1].measurement  # IEC 61970-301 types beyond the CGMES core list come in with their CIM unit
    assert (temp.type, temp.unit, temp.kind, temp.equipment) == ("Temperature", "degC", "Analog", "BRK/HV1/GT1")
    d, p = points[U(303)]
    assert (p.measurement.type, p.measurement.multiplier, p.measurement.phases) == ("LineToLineVoltage", "k", "AB")
    assert p.signal.value == 11.0 and d.protocol == "dnp3"
    d, p = points[U(304)]  # measured on the tap changer: gridgate's PSR is the transformer
    assert p.measurement.equipment == "BRK/HV1/GT1" and p.measurement.kind == "Discrete"
    d, p = points[U(300)]
    assert d.protocol == "iec61850" and p.measurement.equipment == "BRK/FDR_1/Mill_Lane_cable"
    assert p.measurement.multiplier == "M" and p.measurement.name == "FDR1 MW"
    assert points[U(305)][1].measurement.kind == "Accumulator"


def test_foreign_model_exports_again_with_its_mrids_and_topology(tmp_path):
    site = build_site(read([MODEL])).site
    p = tmp_path / "brk.yaml"
    p.write_text(yaml.safe_dump(site, sort_keys=False))
    g = graph(export(load_config(p))["eq"])
    mrids = {mrid(g, s) for c in ("Breaker", "Disconnector", "LoadBreakSwitch", "PowerTransformer", "BusbarSection",
                                  "ACLineSegment", "EnergyConsumer") for s in typed(g, c)}
    assert mrids == {U(n) for n in (101, 102, 103, 120, 121, 130, 131, 140, 141, 150)}
    source = mrid(g, typed(g, "ExternalNetworkInjection")[0])
    assert U(131) in reachable(adjacency(g), source)
    for cut in (101, 102, 120, 130):  # the feeder is fed through DS, CB, incomer and its own breaker, in series
        assert U(131) not in reachable(adjacency(g, {U(cut)}), source)
    assert U(141) not in reachable(adjacency(g, {U(140)}), source)


def test_mrids_that_are_not_uuids_map_to_uuid5_and_are_noted(tmp_path):
    import uuid

    from gateway.site.model import MRID_NAMESPACE

    text = MODEL.read_text().replace(U(130), "BRK-FDR1-CB")  # CIM allows any string; gridgate keeps UUIDs
    p = tmp_path / "brk.xml"
    p.write_text(text)
    res = build_site(read([p]))
    u = str(uuid.uuid5(MRID_NAMESPACE, "cim:BRK-FDR1-CB"))
    assert f"Breaker 'FDR1 CB' (mRID BRK-FDR1-CB): mRID is not a UUID; gridgate publishes it as {u} (UUID5 of the mRID)" in res.notes
    q = tmp_path / "brk.yaml"
    q.write_text(yaml.safe_dump(res.site, sort_keys=False))
    cfg = load_config(q)
    assert str(cfg.equipment_mrid("BRK/FDR_1/FDR1_CB")) == u
    pos = next(p for d in cfg.devices for p in d.points if p.measurement.type == "SwitchPosition" and "FDR_1" in p.measurement.equipment)
    assert pos.measurement.equipment == "BRK/FDR_1/FDR1_CB"


def test_cim_voltage_not_allocated_to_a_phase_is_kept_and_noted(tmp_path, capsys):
    text = MODEL.read_text().replace(
        "<cim:Measurement.measurementType>LineToLineVoltage</cim:Measurement.measurementType>",
        "<cim:Measurement.measurementType>Voltage</cim:Measurement.measurementType>", 1)
    assert "<cim:Measurement.measurementType>Voltage<" in text
    (tmp_path / "v.xml").write_text(text)
    assert main(["cim", "import", str(tmp_path / "v.xml"), "-o", str(tmp_path / "v.yaml")]) == 0
    assert f"(mRID {U(303)}): measurementType Voltage kept; gridgate reads it as line-to-line" in capsys.readouterr().err
    p = next(p for d in load_config(tmp_path / "v.yaml").devices for p in d.points if str(p.measurement.mrid) == U(303))
    assert p.measurement.type == "Voltage"


async def test_foreign_skeleton_runs_with_its_cim_types(tmp_path, mosquitto):
    """The imported Brookfield skeleton runs: its Temperature (degC) and LineToLineVoltage, from the model's levels."""
    from devices.emulator import Emulator
    from gateway.app import Gateway, GatewayOptions
    from tests.support.mosquitto import free_port
    from tests.support.mqtt import Collector

    out = tmp_path / "brk.yaml"
    assert main(["cim", "import", str(MODEL), "-o", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    for d in data["devices"]:
        d["port"] = free_port()
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    site = load_config(out)
    want = {str(p.measurement.mrid) for d in site.devices for p in d.points}
    async with Emulator(site):
        async with Collector(mosquitto.port, [f"gridgate/v1/{site.gateway.id}/meas/#"]) as sub:
            async with Gateway(site, GatewayOptions(broker=mosquitto.url)):
                await sub.wait_for(lambda: {m.json["measurement"]["mRID"] for m in sub.messages} >= want, 60,
                                   "a value of every imported measurement")
    last = {m.json["measurement"]["mRID"]: m.json for m in sub.messages}
    assert all(v["quality"]["validity"] == "GOOD" for v in last.values())
    temp, volts = last[U(307)], last[U(303)]
    assert (temp["measurement"]["measurementType"], temp["measurement"]["unitSymbol"], temp["value"]) == ("Temperature", "degC", 20.0)
    assert temp["provenance"]["protocol"] == "dnp3" and temp["measurement"]["topic"].endswith("/BRK/HV1/GT1/Temperature")
    assert volts["measurement"]["cimMeasurementType"] == "LineToLineVoltage" and volts["value"] == pytest.approx(11.0, abs=0.01)
