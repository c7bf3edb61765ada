"""``gridgate scenario run FILE --profile NAME``: scenarios inside a network profile, with
network faults on the profile's emulated WAN link, observed on the MQTT side in the control
zone (issues 7 and 8).

One lab run (wan-cellular, a Modbus meter + an IEC 61850 IED) carries a 5 s partition of the
north link and then a 700 ms latency step; a second, CLI run has an expectation a north
partition cannot meet and must exit 1. Skipped with the reason where namespaces/TUN are
unavailable; every run is bounded by an alarm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devices.netlab.profile import load_profile
from devices.scenario.profiled import run_in_profile
from gateway.site.load import ConfigError
from tests.netlab_product.conftest import deadline
from tests.support.lab import needs_lab

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "configs" / "primary-substation.yaml"
KEEP = ("pqm-inc1", "ied-f1")


def small_site(tmp: Path) -> Path:
    """The example substation cut down to one meter and one IED (2 cores, parallel CI)."""
    data = yaml.safe_load(SITE.read_text())
    data["devices"] = [d for d in data["devices"] if d["name"] in KEEP]
    p = tmp / "site.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def scenario(tmp: Path, name: str, steps: list, expect: list, duration: float | None = None) -> Path:
    doc = {"name": name, "seed": 3, "config": "site.yaml", "steps": steps, "expect": expect}
    if duration:
        doc["duration"] = f"{duration}s"
    p = tmp / f"{name.replace(' ', '-')}.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


# latency first: after a partition TCP's retransmission backoff and the gateway's backlog
# make value age a measure of the outage, not of the link delay
LATENCY = {"name": "slow", "at": "3s", "target": {"link": "north"}, "fault": {"kind": "latency", "ms": 700},
           "duration": "5s"}
PARTITION = {"name": "cut", "at": "14s", "target": {"link": "north"}, "fault": {"kind": "partition"}, "duration": "5s"}


@pytest.fixture(scope="module")
def wan_run(tmp_path_factory):  # noqa: ANN001, ANN201
    tmp = tmp_path_factory.mktemp("wan")
    small_site(tmp)
    f = scenario(tmp, "wan faults", [LATENCY, PARTITION], [
        {"name": "meter resumes", "point": "pqm-inc1/P", "quality": "GOOD", "fresh": True, "after": "cut.end", "within": "10s"},
        {"name": "ied resumes", "point": "ied-f1/Ia", "quality": "GOOD", "fresh": True, "after": "cut.end", "within": "10s"},
    ])
    with deadline(85):
        res = run_in_profile(str(f), None, load_profile("wan-cellular"), warmup=10, keep=tmp / "work")
    (tmp / "report.json").write_text(json.dumps(res.report, default=str))
    return res


def _fault(res, fid: str) -> dict:  # noqa: ANN001
    return next(f for f in res.report["faults"] if f["id"] == fid)


@needs_lab
def test_partition_runs_to_pass_and_reports_gap_and_recovery(wan_run) -> None:  # noqa: ANN001
    r = wan_run.report
    assert wan_run.passed, (wan_run.errors, [v.__dict__ for v in wan_run.verdicts])
    assert r["profile"] == "wan-cellular"
    cut = _fault(wan_run, "cut")
    assert cut["kind"] == "partition" and cut["target"] == "link north"
    assert 13.9 < cut["injected_at"] < 14.5 and 18.9 < cut["cleared_at"] < 19.5
    net = cut["network"]
    # values stopped: at most what was already in flight on the 35 ms link arrives in the cut
    assert net["values_during"] <= 10, net
    assert net["last_value_before_s"] is not None and net["last_value_before_s"] > -2.5, net
    # the gap spans the partition; values come back after the heal (TCP retransmission backoff: up to ~6 s)
    assert 4.5 < net["gap_s"] < 15, net
    assert 0 <= net["recovery_s"] < 9, net
    # the link really dropped the gateway's packets, and nothing was lost end to end: QoS 1 over the surviving session
    north = r["links"]["north"]
    assert north["up"]["fault_drops"] > 0, north
    assert r["seq_gaps"] == [], r["seq_gaps"][:5]
    assert r["recorder"]["samples"] > 40 and r["recorder"]["undecodable"] == 0
    assert {v.name for v in wan_run.verdicts if v.passed} == {"meter resumes", "ied resumes"}
    # the expectations were met by values arriving after the heal, not by ones from before the cut
    assert all(v.latency is not None and v.latency > 0 for v in wan_run.verdicts)


@needs_lab
def test_latency_change_raises_value_age(wan_run, tmp_path) -> None:  # noqa: ANN001
    slow = _fault(wan_run, "slow")
    age = slow["network"]["value_age_ms"]
    assert age["before"] is not None and age["during"] is not None and age["after"] is not None, age
    # wan-cellular: 35 ± 10 ms one way; the fault makes it 700 ms (jitter capped at the profile's 10 ms)
    # live values only: each point's initial image at the gateway's start-up (250-860 ms old) is left out
    assert age["before"] < 150, age
    # the one-way delay rose by 665 ms
    assert age["during"] >= 650 and age["during"] > age["before"] + 550, age
    assert age["after"] < age["during"], age
    # the profile's impairment is back after the clear
    assert wan_run.report["links"]["north"]["impairment"]["delay_ms"] == 35.0
    from devices.scenario.report import write

    out = tmp_path / "r.html"
    write(wan_run.report, out)
    page = out.read_text()
    assert "Network faults (profile wan-cellular)" in page and ">partition<" in page and ">latency<" in page


@needs_lab
def test_failing_expectation_exits_1(tmp_path) -> None:
    small_site(tmp_path)
    # a WAN cut north of the gateway cannot make the field values INVALID: the expectation fails
    f = scenario(tmp_path, "wrong expectation", [{**PARTITION, "at": "2s", "duration": "3s", "expect": [
        {"point": "pqm-inc1/Hz", "quality": "INVALID", "within": "3s", "name": "north cut marks values invalid"}]}], [])
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "scenario", "run", str(f), "--profile", "wan-cellular",
                        "--report", str(tmp_path / "out.json")], cwd=REPO, capture_output=True, text=True, timeout=80,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL steps[0].expect[0]: north cut marks values invalid" in r.stdout and "FAILED" in r.stdout
    rep = json.loads((tmp_path / "out.json").read_text())
    assert rep["passed"] is False and rep["faults"][0]["network"]["gap_s"] > 2.5


def test_network_fault_without_profile_fails_with_reason(tmp_path) -> None:
    small_site(tmp_path)
    f = scenario(tmp_path, "no profile", [PARTITION], [])
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "scenario", "run", str(f), "--free-ports"], cwd=REPO,
                       capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "run with --profile NAME" in r.stdout + r.stderr


def test_unknown_link_names_the_emulated_links(tmp_path) -> None:
    small_site(tmp_path)
    f = scenario(tmp_path, "bad link", [{**PARTITION, "target": {"link": "south"}}], [])
    with pytest.raises(ConfigError) as e:
        run_in_profile(str(f), None, load_profile("wan-cellular"))
    msg = str(e.value)
    assert "steps[0]" in msg and "no emulated link 'south'" in msg and "north" in msg


def test_network_fault_needs_a_link_target(tmp_path) -> None:
    small_site(tmp_path)
    f = scenario(tmp_path, "device target", [{**PARTITION, "target": {"device": "pqm-inc1"}}], [])
    with pytest.raises(ConfigError) as e:
        run_in_profile(str(f), None, load_profile("wan-cellular"))
    assert "target: {link: NAME}" in str(e.value)
