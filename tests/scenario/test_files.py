"""Scenario files: the shipped ones load against the example site; malformed ones get
errors naming the file, the YAML path and the line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devices.scenario.resolve import load_scenario
from gateway.site.load import ConfigError
from tests.scenario.helpers import EXAMPLE, ROOT

SCENARIOS = sorted((ROOT / "configs" / "scenarios").glob("*.yaml"))


def test_shipped_scenarios_cover_the_issue() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"feeder-fault-trip", "rtu-comms-loss", "chattering-breaker", "tap-runaway", "stuck-analogue",
            "meter-out-of-range", "dnp3-restart-overflow", "ied-stops-reporting", "link-flap",
            "ct-saturation-delayed-trip"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_resolves(path: Path) -> None:
    plan = load_scenario(path)
    assert plan.events and plan.duration > max(e.t for e in plan.events)
    injects = [e for e in plan.events if e.action == "inject"]
    assert len({e.fid for e in injects}) == len(injects)
    assert plan.warnings == []


def test_timeline_forms() -> None:
    plan = load_scenario(ROOT / "configs" / "scenarios" / "link-flap.yaml")
    inj = [(e.t, e.fid) for e in plan.events if e.action == "inject"]
    clr = [e.t for e in plan.events if e.action == "clear"]
    assert inj == [(5.0 + 4 * k, f"flap#{k}") for k in range(5)]
    assert clr == [7.0 + 4 * k for k in range(5)]
    trip = load_scenario(ROOT / "configs" / "scenarios" / "feeder-fault-trip.yaml")
    at = {e.fid: e.t for e in trip.events if e.action == "inject"}
    assert at == {"fault": 5.0}  # one physical event: the plant model does the rest
    # the SOE order expectation and the step's own expectation are anchored at the fault
    assert [t for w, t, _ in trip.expectations if w == "expect[0]"] == [pytest.approx(5.0)]
    assert [t for w, t, _ in trip.expectations if w == "steps[0].expect[0]"] == [pytest.approx(5.0)]


BAD = [
    ("steps:\n  - at: 1s\n    target: {device: nosuch}\n    fault: {kind: silent}\n",
     "steps[0].target: no enabled device 'nosuch'", 5),
    ("steps:\n  - at: 1s\n    target: {point: pqm-inc1/Ixx}\n    fault: {kind: stuck}\n",
     "steps[0].target: no point 'Ixx' on device 'pqm-inc1'", 5),
    ("steps:\n  - at: 1s\n    target: {device: rtu1}\n    fault: {kind: melt}\n",
     "steps[0].fault: 'melt' is not a known 'kind'", 6),
    ("steps:\n  - at: soon\n    target: {device: rtu1}\n    fault: {kind: disconnect}\n",
     "steps[0].at: at: expected a time such as 500ms, 12s, 5m, got 'soon'", 4),
    ("steps:\n  - after: nothing+2s\n    target: {device: rtu1}\n    fault: {kind: disconnect}\n",
     "steps[0].after: no earlier step named 'nothing'", 4),
    ("steps:\n  - every: 30s during 5m\n    target: {device: rtu1}\n    fault: {kind: disconnect}\n",
     "steps[0].every: every: expected '<period> for <total>'", 4),
    ("steps:\n  - at: 1s\n    target: {device: pqm-inc1}\n    fault: {kind: iin, bits: [NEED_TIME]}\n",
     "steps[0].fault: fault 'iin' does not apply to modbus device pqm-inc1", 6),
    ("steps:\n  - at: 1s\n    target: {device: rtu1, bay: KGM/F1}\n    fault: {kind: disconnect}\n",
     "steps[0].target: name exactly one of", 5),
    ("steps:\n  - at: 1s\n    target: {device: rtu1}\n    fault: {kind: disconnect}\n    expect:\n"
     "      - {point: rtu1/Nope, quality: INVALID}\n", "steps[0].expect[0].point: no point 'Nope' on device 'rtu1'", 8),
    ("steps:\n  - at: 1s\n    target: {device: rtu1}\n    fault: {kind: disconnect}\n    expect:\n"
     "      - {point: rtu1/T1_P, quality: BROKEN}\n", "steps[0].expect[0].quality: 'BROKEN' is not a quality", 8),
    ("steps:\n  - at: 1s\n    target: {device: rtu1}\n    fault: {kind: silent}\n",
     "steps[0].fault: fault 'silent' does not apply to dnp3 device rtu1", 6),
    ("duration: 2s\nsteps:\n  - at: 3s\n    target: {device: rtu1}\n    fault: {kind: disconnect}\n",
     "duration: 2s ends before 1 timeline events (the last at 3s)", 3),
]


@pytest.mark.parametrize("body,msg,line", BAD, ids=[b[1].split(":")[0] + str(i) for i, b in enumerate(BAD)])
def test_malformed_scenarios(tmp_path: Path, body: str, msg: str, line: int) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(f"name: bad\nconfig: {EXAMPLE}\n" + body)
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    text = str(e.value)
    assert text.startswith(f"{p}: ")
    assert msg in text, text
    assert f"(line {line})" in text, text
    assert "Traceback" not in text


def test_cli_reports_malformed_file_without_traceback(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(f"name: bad\nconfig: {EXAMPLE}\nsteps:\n  - at: 1s\n    target: {{device: rtu9}}\n    fault: {{kind: silent}}\n")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "scenario", "run", str(p)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "steps[0].target: no enabled device 'rtu9'" in r.stderr and "(line 5)" in r.stderr
    assert "Traceback" not in r.stderr


def test_json_schema_is_published() -> None:
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "scenario", "schema"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    assert set(schema["properties"]) >= {"name", "seed", "steps", "expect", "tick"}
    kinds = json.dumps(schema)
    for k in ("report_suppression", "wrong_tid", "trickle", "stuck", "set_state"):
        assert f'"{k}"' in kinds


def test_targets_by_mrid_bay_and_points(tmp_path: Path) -> None:
    from gateway.config import load_config

    cfg = load_config(EXAMPLE)
    ia = next(p for d in cfg.devices if d.name == "pqm-inc1" for p in d.points if p.name == "Ia")
    mrid = str(cfg.measurement_mrid(ia))
    p = tmp_path / "t.yaml"
    p.write_text(f"name: t\nconfig: {EXAMPLE}\nsteps:\n"
                 f"  - {{at: 1s, target: {{point: {mrid.upper()}}}, fault: {{kind: stuck}},"
                 f" expect: [{{point: {mrid}, value: 1, within: 1s}}]}}\n"
                 "  - {after: previous+1s, target: {bay: KGM/F1}, fault: {kind: offset, value: 1}}\n"
                 "  - {after: previous, target: {points: [rtu1/T1_P, ied-f2/Ia]}, fault: {kind: disconnect}}\n")
    plan = load_scenario(p)
    assert plan.site.points(plan.events[0].target) == ["pqm-inc1/Ia"]
    assert plan.site.point(plan.expectations[0][2].point) == "pqm-inc1/Ia"
    bay = plan.site.points(plan.events[1].target)
    assert "ied-f1/Ia" in bay and "ied-f1/CB" in bay and all(k.startswith("ied-f1/") for k in bay)
    assert plan.site.devices(plan.events[2].target) == ["ied-f2", "rtu1"]
    assert [e.t for e in plan.events] == [1.0, 2.0, 2.0]
