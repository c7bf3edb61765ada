"""Whole scenario runs on the scenario clock: determinism, expectations, the report, the CLI exit code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from devices.scenario.report import write
from devices.scenario.resolve import load_scenario
from devices.scenario.runner import run_plan
from tests.scenario.helpers import ROOT
from tests.support.sites import modbus_site

NOISY = """
name: noisy meter
seed: {seed}
tick: 400ms
config: {config}
steps:
  - name: noise
    at: 400ms
    target: {{point: meter1/Ia}}
    fault: {{kind: noise, sigma: 5}}
    duration: 3200ms
  - after: noise
    target: {{point: meter1/Q}}
    fault: {{kind: drift, rate: 3}}
    duration: 3200ms
    expect:
      - {{point: meter1/Q, above: -805, within: 3s}}
  - name: mute
    at: 4s
    target: {{device: meter1}}
    fault: {{kind: silent}}
    duration: 1s
    expect:
      - {{point: meter1/Ia, quality: INVALID, within: 900ms}}
duration: 6s
"""


def during(report: dict, key: str, fid: str) -> list:
    f = next(x for x in report["faults"] if x["id"] == fid)
    vals = [r[1] for r in report["points"][key]["samples"] if f["injected_at"] <= r[0] <= f["cleared_at"]]
    return [v for i, v in enumerate(vals) if i == 0 or v != vals[i - 1]]


async def run(tmp_path: Path, mosquitto, seed: int) -> dict:
    tmp_path.mkdir()
    cfg, path = modbus_site(tmp_path, poll="100ms", timeout="250ms")
    scn = tmp_path / f"noisy-{seed}.yaml"
    scn.write_text(NOISY.format(seed=seed, config=path))
    res = await run_plan(load_scenario(scn), broker=mosquitto.url, warmup=5)
    assert res.errors == []
    return res.report


async def test_same_seed_same_values_and_report(tmp_path: Path, mosquitto) -> None:
    a = await run(tmp_path / "a", mosquitto, seed=7)
    b = await run(tmp_path / "b", mosquitto, seed=7)
    c = await run(tmp_path / "c", mosquitto, seed=8)
    ia_a, ia_b, ia_c = (during(r, "meter1/Ia", "noise") for r in (a, b, c))
    assert len(ia_a) >= 6, ia_a  # one value per 400 ms tick, sampled by 100 ms polls
    assert ia_a == ia_b  # same scenario + seed: the same published values
    assert ia_a != ia_c  # another seed: other noise
    q_a, q_b = during(a, "meter1/Q", "steps[1]"), during(b, "meter1/Q", "steps[1]")
    assert q_a == q_b and q_a[-1] > q_a[0] + 5  # drift of 3/s, in ticks of 0.4 s

    # the report: passed, detection latency per fault, quality transitions, seq gaps
    assert a["passed"] is True and all(e["passed"] for e in a["expectations"])
    mute = next(f for f in a["faults"] if f["id"] == "mute")
    assert 0 < mute["detection_latency"] < 0.9 and mute["undetected"] == []
    assert set(mute["detection"]) == {f"meter1/{p}" for p in ("P", "Q", "Ia", "Vab", "Ang", "Hz", "CB")}
    noise = next(f for f in a["faults"] if f["id"] == "noise")
    assert 0 < noise["detection_latency"] < 1.0 and noise["points"] == ["meter1/Ia"]
    tr = [t["to"] for t in a["points"]["meter1/Ia"]["transitions"]]
    assert tr[:1] == ["GOOD"] and any(t.startswith("INVALID") for t in tr) and tr[-1] == "GOOD"
    assert a["headline"]["detection_latency_max"] == max(f["detection_latency"] for f in a["faults"])
    assert a["seq_gaps"] == []  # one gateway, one subscriber: no value lost
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    write(a, out_json)
    write(a, out_html)
    assert json.loads(out_json.read_text())["scenario"] == "noisy meter"
    page = out_html.read_text()
    assert page.count("<svg") == len(a["points"]) >= 7 and "<polyline" in page
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?http", page)  # self-contained
    assert "Detection latency" in page and "PASS" in page


FAILING = """
name: expects too much
config: {config}
tick: 100ms
steps:
  - name: drift
    at: 500ms
    target: {{point: meter1/Ia}}
    fault: {{kind: offset, value: 10}}
    expect:
      - {{point: meter1/Ia, value: 192.4, tolerance: 0.05, within: 1s}}
      - {{name: nobody flags an offset, point: meter1/Ia, quality: QUESTIONABLE, within: 1s}}
"""


def test_cli_exits_nonzero_and_names_the_failed_expectation(tmp_path: Path, mosquitto) -> None:
    cfg, path = modbus_site(tmp_path, poll="100ms", timeout="250ms")
    scn = tmp_path / "failing.yaml"
    scn.write_text(FAILING.format(config=path))
    out = tmp_path / "out.json"
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "scenario", "run", str(scn), "--broker", mosquitto.url,
                        "--report", str(out), "--warmup", "5"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "PASS steps[0].expect[0]" in r.stdout
    assert "FAIL steps[0].expect[1]: nobody flags an offset" in r.stdout and "FAILED" in r.stdout
    assert "inject drift: offset on point meter1/Ia" in r.stderr  # the progress display
    rep = json.loads(out.read_text())
    assert rep["passed"] is False and [e["passed"] for e in rep["expectations"]] == [True, False]


async def test_unsupported_fault_fails_the_run(tmp_path: Path, mosquitto) -> None:
    cfg, path = modbus_site(tmp_path, poll="100ms", timeout="250ms")
    scn = tmp_path / "link.yaml"
    scn.write_text(f"name: l\nconfig: {path}\nsteps:\n  - at: 200ms\n    target: {{link: wan}}\n    fault: {{kind: link_down}}\n")
    plan = load_scenario(scn)
    assert "network faults need the network-profile lab" in plan.warnings[0]
    res = await run_plan(plan, broker=mosquitto.url, warmup=5)
    assert not res.passed and res.report["passed"] is False
    assert len(res.errors) == 1 and "inject link_down on link wan failed" in res.errors[0]
    assert "network faults need the network-profile lab" in res.errors[0]


async def test_devices_only_against_an_external_gateway(tmp_path: Path, mosquitto) -> None:
    """The system under test is someone else's: the run emulates devices and only watches the broker."""
    from gateway.app import Gateway, GatewayOptions

    cfg, path = modbus_site(tmp_path, poll="100ms", timeout="250ms")
    scn = tmp_path / "sut.yaml"
    scn.write_text(f"""
name: external SUT
config: {path}
steps:
  - name: mute
    at: 300ms
    target: {{device: meter1}}
    fault: {{kind: silent}}
    duration: 1s
    expect:
      - {{point: meter1/Hz, quality: INVALID, within: 1s}}
      - {{point: meter1/Hz, quality: GOOD, after: mute.end, within: 4s}}
""")
    async with Gateway(cfg, GatewayOptions(broker=mosquitto.url, client_id="external-sut")):
        res = await run_plan(load_scenario(scn), broker=mosquitto.url, devices_only=True, warmup=8)
    assert res.passed, res.report["expectations"]
    assert res.report["recorder"]["samples"] >= 7
