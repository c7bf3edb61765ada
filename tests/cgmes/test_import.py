"""CGMES import: round trip of the example site, zip of profiles, and the imported skeleton running."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

from gateway.cgmes.export import export
from gateway.cgmes.importer import build_site
from gateway.cgmes.model import ModelError, read
from gateway.cgmes.topology import derive
from gateway.cim import build_catalog
from gateway.cli import main
from gateway.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"


@pytest.fixture(scope="module")
def cfg():
    return load_config(EXAMPLE)


def _imported(tmp_path: Path, *docs: tuple[str, bytes], extra: list[str] = ()) -> tuple[object, Path]:
    files = []
    for name, data in docs:
        (tmp_path / name).write_bytes(data)
        files.append(str(tmp_path / name))
    out = tmp_path / "imported.yaml"
    assert main(["cim", "import", *files, *extra, "-o", str(out)]) == 0
    return load_config(out), out


def _equipment(c) -> dict[str, tuple[str, str]]:
    return {str(c.equipment_mrid(p)): (p, e.type) for p, (_, _, e) in c.equipment_paths().items()}


def _measurements(c) -> dict[str, tuple]:
    return {e.measurement["mRID"]: (e.kind, e.measurement["cimMeasurementType"], e.measurement["unitSymbol"], e.measurement["unitMultiplier"],
                                    e.measurement["phases"], e.measurement["name"], e.measurement["powerSystemResource"]["mRID"])
            for e in build_catalog(c).values()}


def _topology(c) -> set[tuple[str, int, str]]:
    """(equipment mRID, terminal number, node key) for every terminal: the connectivity by mRID."""
    lay = derive(c)
    return {(str(c.equipment_mrid(p)), i, n) for p, nodes in lay.terminals.items() for i, n in enumerate(nodes)}


def test_round_trip_keeps_equipment_topology_measurements_and_mrids(tmp_path, cfg):
    back, _ = _imported(tmp_path, ("kgm-eq.xml", export(cfg)["eq"]))
    assert _equipment(back) == _equipment(cfg)
    assert _measurements(back) == _measurements(cfg) and len(_measurements(back)) == 113
    assert _topology(back) == _topology(cfg)
    assert [(b.name, b.voltage_kv) for b in back.substations[0].bays] == [(b.name, b.voltage_kv) for b in cfg.substations[0].bays]
    assert {s.mrid for s in back.substations} == {cfg.substations[0].mrid or back.substations[0].mrid}
    # the re-export is the same model (same classes and mRIDs) apart from the point descriptions
    again = read_objects(export(back)["eq"])
    first = read_objects(export(cfg)["eq"])
    assert again == first


def read_objects(doc: bytes) -> dict[str, tuple]:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        f.write(doc)
        f.flush()
        m = read([f.name])
    return {k: (o.cls, o.name, tuple(sorted(o.refs.items()))) for k, o in m.objects.items()}


def test_device_layout_one_ied_per_feeder_bay_and_an_rtu(tmp_path, cfg):
    back, out = _imported(tmp_path, ("kgm-eq.xml", export(cfg)["eq"]))
    by = {d.name: d for d in back.devices}
    assert sorted(by) == ["ied-kgm_f1", "ied-kgm_f2", "ied-kgm_f3", "ied-kgm_f4", "ied-kgm_f5", "ied-kgm_f6", "rtu1"]
    assert by["rtu1"].protocol == "dnp3" and {d.protocol for n, d in by.items() if n != "rtu1"} == {"iec61850"}
    for i in range(1, 7):
        assert {p.measurement.equipment.split("/")[1] for p in by[f"ied-kgm_f{i}"].points} == {f"F{i}"}
    assert not any(p.measurement.equipment.split("/")[1].startswith("F") for p in by["rtu1"].points)
    text = out.read_text()
    assert text.startswith("# site skeleton built by `gridgate cim import`") and "type: EnergySource" in text
    assert main(["validate", str(out)]) == 0


def test_zip_of_profiles_and_substation_choice(tmp_path, cfg, capsys):
    docs = export(cfg, ("eq", "op"))
    z = tmp_path / "kgm.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("kgm_EQ.xml", docs["eq"])
        zf.writestr("kgm_OP.xml", docs["op"])
    back = build_site(read([z]), "KGM")
    assert sum(len(d["points"]) for d in back.site["devices"]) == 113
    with pytest.raises(ModelError) as e:
        build_site(read([z]), "NOPE")
    assert str(e.value) == "no Substation named 'NOPE' in the model (it has: KGM)"
    assert main(["cim", "import", str(z), "--substation", "NOPE"]) == 1
    assert "no Substation named 'NOPE'" in capsys.readouterr().err


async def test_imported_site_runs_with_emulated_devices(tmp_path, cfg, mosquitto):
    """The skeleton runs: every measurement of the model is published, GOOD, with the model's mRID."""
    from devices.emulator import Emulator
    from gateway.app import Gateway, GatewayOptions
    from tests.support.mosquitto import free_port
    from tests.support.mqtt import Collector

    _, out = _imported(tmp_path, ("kgm-eq.xml", export(cfg)["eq"]))
    data = yaml.safe_load(out.read_text())
    for d in data["devices"]:
        d["port"] = free_port()
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    site = load_config(out)
    want = set(_measurements(cfg))
    async with Emulator(site):
        async with Collector(mosquitto.port, [f"gridgate/v1/{site.gateway.id}/meas/#"]) as sub:
            async with Gateway(site, GatewayOptions(broker=mosquitto.url)):
                await sub.wait_for(lambda: {m.json["measurement"]["mRID"] for m in sub.messages} >= want, 60,
                                   "a value of every measurement of the model")
    last = {m.json["measurement"]["mRID"]: m.json for m in sub.messages}
    assert set(last) == want
    assert all(v["quality"]["validity"] == "GOOD" for v in last.values())
    by_topic = {v["measurement"]["topic"].split("/meas/")[1]: v for v in last.values()}
    assert by_topic["KGM/F1/CB/SwitchPosition"]["value"] == 2 and by_topic["KGM/F1/CB/SwitchPosition"]["valueAlias"] == "closed"
    assert by_topic["KGM/F1/FDR/Frequency"]["value"] == pytest.approx(50.0, abs=0.01)
    assert by_topic["KGM/BS/BB1/LineToLineVoltage/AB"]["value"] == pytest.approx(11.0, abs=0.01)  # kV, from the 11 kV level
    assert by_topic["KGM/T1/TX/TapPosition"]["value"] == 9


def test_import_json_report(tmp_path, cfg, capsys):
    import json

    p = tmp_path / "kgm-eq.xml"
    p.write_bytes(export(cfg)["eq"])
    assert main(["cim", "import", str(p), "-o", str(tmp_path / "s.yaml"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["points"] == 113 and rep["devices"] == 7 and rep["ignored"] == {}
    assert rep["notes"] == []  # the example's own grid infeed comes back as its EnergySource, topology as derived
    first = yaml.safe_load((tmp_path / "s.yaml").read_text())["substations"][0]
    assert list(first)[:2] == ["name", "mrid"] and list(first["bays"][0]["equipment"][0])[:2] == ["name", "mrid"]


def test_imported_site_runs_in_gridgate_demo(tmp_path, cfg, mosquitto, capsys):
    import json

    from tests.support.mosquitto import free_port

    _, out = _imported(tmp_path, ("kgm-eq.xml", export(cfg)["eq"]))
    data = yaml.safe_load(out.read_text())
    for d in data["devices"]:
        d["port"] = free_port()
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    capsys.readouterr()
    assert main(["demo", "--config", str(out), "--broker", mosquitto.url, "--duration", "12", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["measurements_seen"] == 113 and not summary["devices_skipped"]
    assert sorted(summary["devices_emulated"]) == sorted(d["name"] for d in data["devices"])


def test_two_substations_round_trip_and_choice(tmp_path):
    site = {
        "site": {"name": "TWO", "operator": "Example DNO"},
        "substations": [
            {"name": "A", "bays": [{"name": "T1", "voltage_kv": 33, "equipment": [{"name": "TX", "type": "PowerTransformer"}]},
                                   {"name": "INC", "voltage_kv": 11, "equipment": [{"name": "CB", "type": "Breaker"}]},
                                   {"name": "F1", "voltage_kv": 11, "equipment": [{"name": "CB", "type": "Breaker"},
                                                                                  {"name": "LOAD", "type": "EnergyConsumer"}]}]},
            {"name": "B", "bays": [{"name": "F9", "voltage_kv": 11, "equipment": [{"name": "DS", "type": "Disconnector"},
                                                                                  {"name": "CB", "type": "Breaker"},
                                                                                  {"name": "L", "type": "ACLineSegment"}]}]},
        ],
        "devices": [{"name": "rtu", "kind": "rtu", "protocol": "dnp3", "port": 20000, "points": [
            {"name": "A_P", "group": "analog", "index": 0, "measurement": {"equipment": "A/F1/LOAD", "type": "ThreePhaseActivePower"}},
            {"name": "B_I", "group": "analog", "index": 1, "measurement": {"equipment": "B/F9/L", "type": "LineCurrent", "phases": "A"}},
            {"name": "B_CB", "group": "double_binary", "index": 0, "measurement": {"equipment": "B/F9/CB", "type": "SwitchPosition"}},
        ]}],
    }
    p = tmp_path / "two.yaml"
    p.write_text(yaml.safe_dump(site, sort_keys=False))
    cfg = load_config(p)
    back, _ = _imported(tmp_path, ("two-eq.xml", export(cfg)["eq"]))
    assert _equipment(back) == _equipment(cfg) and _measurements(back) == _measurements(cfg)
    assert _topology(back) == _topology(cfg)
    only_b, out = _imported(tmp_path, ("two-eq.xml", export(cfg)["eq"]), extra=["--substation", "B"])
    assert [s.name for s in only_b.substations] == ["B"]
    assert {p.name for d in only_b.devices for p in d.points} == {"B_I", "B_CB"}
    assert "A_P" not in out.read_text()  # a measurement of the other substation is left out, not noted as a problem
