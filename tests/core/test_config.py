"""Config errors name the file, the YAML path, the line and what is allowed."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.site.load import ConfigError
from gateway.site.model import MRID_NAMESPACE

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
site: {name: TEST}
substations:
  - name: S1
    bays:
      - name: F1
        equipment: [{name: CB, type: Breaker}, {name: FDR, type: ACLineSegment}]
devices:
  - name: m1
    kind: meter
    protocol: modbus
    port: 15999
    points:
      - {name: P, table: holding, address: 0, type: float32, measurement: {equipment: S1/F1/FDR, type: ThreePhaseActivePower}}
      - {name: I, table: holding, address: 2, measurement: {equipment: S1/F1/FDR, type: LineCurrent, phases: A}}
"""


def load_text(tmp_path: Path, text: str):
    f = tmp_path / "site.yaml"
    f.write_text(text)
    return load_config(f)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, text)
    msg = str(e.value)
    assert "Traceback" not in msg
    assert msg.startswith(str(tmp_path / "site.yaml") + ": ")
    return msg


def test_base_is_valid(tmp_path):
    cfg = load_text(tmp_path, BASE)
    assert [p.name for p in cfg.devices[0].points] == ["P", "I"]
    p = cfg.devices[0].points[0]
    assert p.measurement.kind == "Analog" and p.measurement.unit == "W"  # defaults from measurementType


def test_bad_yaml(tmp_path):
    msg = error_of(tmp_path, BASE.replace("kind: meter", "kind: meter\n   bad: [unclosed"))
    assert "line 10, column 4: not valid YAML" in msg


def test_duplicate_yaml_key(tmp_path):
    msg = error_of(tmp_path, BASE.replace("port: 15999", "port: 15999\n    port: 15998"))
    assert "duplicate key 'port' (first on line 11)" in msg


def test_unknown_key(tmp_path):
    msg = error_of(tmp_path, BASE.replace("port: 15999", "port: 15999\n    colour: red"))
    assert "devices[0].colour: unknown key; remove it or check its spelling" in msg
    assert "(line 12)" in msg


def test_wrong_type(tmp_path):
    msg = error_of(tmp_path, BASE.replace("port: 15999", "port: lots"))
    assert "devices[0].port: Input should be a valid integer" in msg and "(line 11)" in msg


def test_out_of_range_address(tmp_path):
    msg = error_of(tmp_path, BASE.replace("address: 2,", "address: 70000,"))
    assert "devices[0].points[1].address: Input should be less than or equal to 65535 (line 14)" in msg


def test_duplicate_mrid(tmp_path):
    m = "11111111-1111-1111-1111-111111111111"
    text = BASE.replace("type: ThreePhaseActivePower}", f"type: ThreePhaseActivePower, mrid: {m}}}").replace(
        "phases: A}", f"phases: A, mrid: {m}}}"
    )
    msg = error_of(tmp_path, text)
    assert f"devices[0].points[1].measurement.mrid: duplicate mRID {m} (also devices[0].points[0] (m1/P)) (line 14)" in msg


def test_address_overlap(tmp_path):
    msg = error_of(tmp_path, BASE.replace("address: 2,", "address: 1,"))
    assert (
        "devices[0].points[1].address: point 'I' overlaps point 'P' at holding address 1; give each point its own addresses"
        in msg
    )


def test_dnp3_index_and_mms_reference_clash(tmp_path):
    dnp3 = BASE.replace("protocol: modbus", "protocol: dnp3").replace("table: holding, address: 0, type: float32,", "group: analog, index: 4,").replace("table: holding, address: 2,", "group: analog, index: 4,")
    msg = error_of(tmp_path, dnp3)
    assert "devices[0].points[1].index: point 'I' overlaps point 'P' at analog index 4; give each point its own addresses" in msg
    mms = BASE.replace("protocol: modbus", "protocol: iec61850").replace("table: holding, address: 0, type: float32,", "reference: LD1/MMXU1.TotW.mag.f,").replace("table: holding, address: 2,", "reference: LD1/MMXU1.TotW.mag.f,")
    msg = error_of(tmp_path, mms)
    assert "devices[0].points[1].reference: point 'I' overlaps point 'P' at LD1/MMXU1.TotW.mag.f" in msg


def test_unknown_measurement_type(tmp_path):
    msg = error_of(tmp_path, BASE.replace("type: LineCurrent", "type: LineAmps"))
    assert "devices[0].points[1].measurement.type: 'LineAmps' is not allowed; expected one of" in msg
    assert "'LineCurrent'" in msg and "(line 14)" in msg


def test_unit_not_fitting_type(tmp_path):
    msg = error_of(tmp_path, BASE.replace("phases: A}", "phases: A, unit: V}"))
    assert "devices[0].points[1].measurement: unit 'V' does not fit LineCurrent; allowed: A" in msg


def test_unknown_unit(tmp_path):
    msg = error_of(tmp_path, BASE.replace("phases: A}", "phases: A, unit: amps}"))
    assert "devices[0].points[1].measurement.unit: 'amps' is not allowed; expected one of 'W', 'VAr'" in msg


def test_unknown_equipment(tmp_path):
    msg = error_of(tmp_path, BASE.replace("S1/F1/FDR, type: LineCurrent", "S1/F9/FDR, type: LineCurrent"))
    assert "devices[0].points[1].measurement.equipment: 'S1/F9/FDR' is not a substation/bay/equipment of this site" in msg


def test_unknown_signal_kind(tmp_path):
    msg = error_of(tmp_path, BASE.replace("phases: A}}", "phases: A}, signal: {kind: wobble}}"))
    assert "devices[0].points[1].signal: 'wobble' is not a known 'kind'; expected one of 'constant'" in msg


def test_several_problems_all_reported(tmp_path):
    msg = error_of(tmp_path, BASE.replace("port: 15999", "port: lots\n    colour: red"))
    assert msg.count("\n") == 1  # two problems, one line each


def test_mrid_is_deterministic(tmp_path):
    cfg = load_text(tmp_path, BASE)
    p = cfg.devices[0].points[0]
    assert cfg.measurement_mrid(p) == uuid.uuid5(MRID_NAMESPACE, "TEST/S1/F1/FDR/P")
    assert load_text(tmp_path, BASE).measurement_mrid(p) == cfg.measurement_mrid(p)


def test_example_config_is_valid():
    cfg = load_config(ROOT / "configs/primary-substation.yaml")
    protocols = sorted({d.protocol for d in cfg.devices})
    assert protocols == ["dnp3", "iec61850", "modbus"]
    feeders = [b for s in cfg.substations for b in s.bays if b.name.startswith("F")]
    assert len(feeders) >= 6


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_cli_validate_exit_codes(tmp_path):
    ok = run_cli("validate", "configs/primary-substation.yaml")
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("address: 2,", "address: 1,"))
    r = run_cli("validate", str(bad))
    assert r.returncode == 1
    assert "devices[0].points[1].address" in r.stderr and "Traceback" not in r.stderr
    j = run_cli("validate", "--json", str(bad))
    assert j.returncode == 1 and '"valid": false' in j.stdout


def test_cli_schema_and_help():
    r = run_cli("schema")
    assert r.returncode == 0
    import json

    schemas = json.loads(r.stdout)
    assert set(schemas) == {"config", "measurement", "value", "status", "heartbeat", "command", "result", "signed_command"}
    assert "timeStamp" in schemas["value"]["properties"]
    assert run_cli("--help").returncode == 0
    assert run_cli().returncode == 2


def test_isolated_loading_gives_the_same_model_and_errors(tmp_path):
    f = tmp_path / "site.yaml"
    f.write_text(BASE)
    assert load_config(f, isolate=True) == load_config(f, isolate=False)
    f.write_text(BASE.replace("address: 2,", "address: 1,"))
    with pytest.raises(ConfigError) as e:
        load_config(f, isolate=True)
    assert e.value.problems[0].startswith("devices[0].points[1].address: point 'I' overlaps")
