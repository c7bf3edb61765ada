"""Every shipped scenario (configs/scenarios) runs to PASS with the real product: `gridgate scenario run`
on the example site cut down to the devices the scenario touches, against real Mosquitto.

The scenarios other tests already run end to end (with extra assertions) are listed in ``ELSEWHERE``;
the rest run here, in parallel processes, so the whole set costs about the longest one. A test
makes sure no shipped scenario is left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.scenario.helpers import EXAMPLE, ROOT

SCENARIOS = ROOT / "configs" / "scenarios"
#: run end to end by another test (file: what it adds)
ELSEWHERE = {
    "feeder-fault-trip": "tests/plant/test_plant_scenario.py, tests/plant/test_plant_fullsite.py (all nine devices)",
    "tap-runaway-lockout": "tests/plant/test_plant_scenario.py",
    "ct-saturation-delayed-trip": "tests/plant/test_plant_scenario.py",
    "ied-stops-reporting": "tests/scenario/test_protocol_faults.py",
    "rtu104-link-faults": "tests/iec104/test_shipped_scenario.py",
    "wan-flap": "tests/netlab_scenario/test_shipped_profile_scenarios.py (network lab)",
    "wan-partition": "tests/netlab_scenario/test_shipped_profile_scenarios.py (network lab)",
}
#: shortened for the test (file: {YAML path: value}); everything else runs as shipped
SHORTER = {"stuck-analogue": {("steps", 0, "duration"): "8s"}}


def devices_of(scn: dict) -> set[str]:
    """The devices a scenario targets or expects on."""
    out: set[str] = set()

    def point(p: str) -> None:
        out.add(p.split("/", 1)[0])

    for step in scn.get("steps", []):
        t = step.get("target", {})
        if "device" in t:
            out.add(t["device"])
        if "point" in t:
            point(t["point"])
        for ex in step.get("expect", []):
            point(ex["point"])
    for ex in scn.get("expect", []):
        for item in ex.get("order", [ex]):
            point(item["point"])
    return out


def prepare(tmp: Path, name: str) -> tuple[Path, Path]:
    scn = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    for (*where, key), value in SHORTER.get(name, {}).items():
        node = scn
        for k in where:
            node = node[k]
        node[key] = value
    keep = devices_of(scn)
    site = yaml.safe_load(EXAMPLE.read_text())
    site["devices"] = [d for d in site["devices"] if d["name"] in keep]
    site["gateway"]["id"] = f"gw-{name}"  # runs share the broker: one MQTT client id and topic tree each
    assert {d["name"] for d in site["devices"]} == keep, keep
    d = tmp / name
    d.mkdir()
    (d / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    scn["config"] = "site.yaml"
    (d / f"{name}.yaml").write_text(yaml.safe_dump(scn, sort_keys=False))
    return d / f"{name}.yaml", d / "report.json"


def test_every_shipped_scenario_is_run_somewhere() -> None:
    shipped = {p.stem for p in SCENARIOS.glob("*.yaml")}
    here = shipped - set(ELSEWHERE)
    assert set(ELSEWHERE) <= shipped, set(ELSEWHERE) - shipped
    for name, where in ELSEWHERE.items():
        for f in where.split(", "):
            text = (ROOT / f.split(" ")[0]).read_text()
            assert f"{name}.yaml" in text or f'"{name}"' in text, (name, f)
    assert here == set(RUN_HERE), here ^ set(RUN_HERE)


RUN_HERE = ("chattering-breaker", "dnp3-restart-overflow", "link-flap", "meter-out-of-range", "rtu-comms-loss",
            "stuck-analogue", "tap-runaway")


def test_shipped_scenarios_pass(tmp_path, mosquitto) -> None:
    runs = {}
    for name in RUN_HERE:
        scn, report = prepare(tmp_path, name)
        log = (tmp_path / f"{name}.log").open("w")
        runs[name] = (subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "scenario", "run", "--free-ports", "--broker", mosquitto.url,
             "--warmup", "30", "--report", str(report), str(scn)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), report, log)
    end = time.monotonic() + 240
    failed = {}
    for name, (proc, report, log) in runs.items():
        try:
            rc = proc.wait(timeout=max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
        if rc != 0 or not json.loads(report.read_text())["passed"]:
            failed[name] = (tmp_path / f"{name}.log").read_text()[-2000:]
    assert not failed, failed
    for name, (_, report, _) in runs.items():
        rep = json.loads(report.read_text())
        assert rep["expectations"] and all(e["passed"] for e in rep["expectations"]), (name, rep["expectations"])
        assert rep["faults"], name
