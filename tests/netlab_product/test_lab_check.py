"""`gridgate lab check`: the reach matrix of real namespaces compared with the profile, and a
check that cannot report a false breach or a false pass (per-zone listener tokens, the target's own
addresses, "could not check" when a timeout proves nothing)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from devices.netlab import Lab, load_profile
from devices.netlab.check import Cell, _combine, run_check
from devices.netlab.profile import parse_profile
from tests.netlab.conftest import needs_tun
from tests.netlab_product.conftest import PY, REPO, needs_lab

PORTS = [502, 1883, 22]
ZONES = ("field", "gateway", "control")


def _reach(report_matrix: dict) -> dict[tuple[str, str], set[int]]:
    """(src, dst) → ports observed open; asserts every cell was decided (open or closed)."""
    out = {}
    for src, row in report_matrix.items():
        for dst, cells in row.items():
            assert all(c["observed"] in ("open", "closed") for c in cells.values()), (src, dst, cells)
            out[(src, dst)] = {int(p) for p, c in cells.items() if c["observed"] == "open"}
    return out


def _gridgate(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "gateway.cli", *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)


def _all_pairs(open_: dict[tuple[str, str], set[int]]) -> dict[tuple[str, str], set[int]]:
    return {(s, d): open_.get((s, d), set()) for s in ZONES for d in ZONES if s != d}


@needs_lab
@pytest.mark.netns
def test_air_gapped_control_is_unreachable_and_said_why() -> None:
    """The old probe aimed at the control zone's "address" 127.0.0.1 and reached its own zone's listener."""
    rep = run_check(load_profile("air-gapped"), PORTS)
    assert rep.verdict == "pass" and rep.exit_code == 0
    assert _reach(rep.as_dict()["matrix"]) == _all_pairs({("gateway", "field"): {502}})
    for src in ("field", "gateway"):
        for cell in rep.matrix[src]["control"].values():
            assert cell.observed == "closed" and "isolated" in cell.detail and "127.0.0.1" not in cell.detail


@needs_lab
@pytest.mark.netns
def test_a_connection_to_the_wrong_zones_listener_is_not_reach() -> None:
    """What fooled the old check: loopback in the field zone answers, but with the field zone's token."""
    with Lab("air-gapped") as lab:
        lst = lab.popen("field", [PY, "-m", "devices.netlab.probe", "listen", "502", "--banner", "gridgate-probe t1 field"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert lst.stdout.readline().strip() == "ready"
        r = lab.run_in("field", [PY, "-m", "devices.netlab.probe", "connect", "127.0.0.1:502", "127.0.0.1:503",
                                 "--expect", "gridgate-probe t2 control", "--timeout", "2"])
        lst.stdin.close()
    out = json.loads(r.stdout)
    assert out["127.0.0.1:502"] == "wrong-listener:gridgate-probe t1 field" and out["127.0.0.1:503"] == "refused"
    assert _combine({"127.0.0.1": out["127.0.0.1:502"]}, None)[0] == "unknown"


@needs_lab
@pytest.mark.netns
def test_data_diode_json_report() -> None:
    r = _gridgate("lab", "check", "data-diode", "--json", "--ports", ",".join(map(str, PORTS)))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["profile"] == "data-diode" and rep["verdict"] == "pass" and rep["ports"] == PORTS
    assert _reach(rep["matrix"]) == _all_pairs({("gateway", "field"): {502}})
    cell = rep["matrix"]["control"]["gateway"]["1883"]
    assert cell == {"expected": "closed", "observed": "closed", "verdict": "ok", "detail": cell["detail"]}
    assert "timeout" in cell["detail"] or "unreachable" in cell["detail"] or "blocked" in cell["detail"]


DIODE_TCP = """name: diode-tcp
zones: {field: {}, gateway: {}, control: {}}
links:
  - {name: south, a: field, b: gateway}
  - {name: north, a: gateway, b: control, mode: diode}
allow:
  - {from: gateway, to: field, proto: tcp, ports: [502]}
  - {from: gateway, to: control, proto: tcp, ports: [1883]}
"""


@needs_lab
@pytest.mark.netns
def test_an_allowed_flow_that_cannot_work_is_a_failure_not_a_pass(tmp_path) -> None:  # noqa: ANN001
    """TCP across a diode is allowed by this profile's rules but the handshake cannot come back."""
    prof = tmp_path / "diode-tcp.yaml"
    prof.write_text(DIODE_TCP)
    r = _gridgate("lab", "check", str(prof), "--ports", "502,1883")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "gateway → control    nothing" in r.stdout and "port 1883 missing" in r.stdout and "FAIL" in r.stdout


FLAPPING = """name: flapping
zones: {field: {}, gateway: {}, control: {}}
links:
  - {name: south, a: field, b: gateway}
  - {name: north, a: gateway, b: control, emulate: {delay_ms: 5}, faults: [{kind: flap, period_s: 60, down_s: 5}]}
allow:
  - {from: gateway, to: field, proto: tcp, ports: [502]}
  - {from: gateway, to: control, proto: tcp, ports: [1883]}
"""


@needs_lab
@needs_tun
@pytest.mark.netns
def test_a_timeout_over_a_faulty_link_is_could_not_check() -> None:
    rep = run_check(parse_profile(__import__("yaml").safe_load(FLAPPING), "flapping"), [1883, 22])
    assert rep.verdict == "could-not-check" and rep.exit_code == 3
    # the link is up at the start (down 5 s of every 60, from second 55): the allowed flow is seen open
    assert rep.matrix["gateway"]["control"][1883].verdict == "ok"
    unknown = rep.matrix["control"]["gateway"][22]
    assert unknown.observed == "unknown" and "scheduled faults" in unknown.detail
    # pairs that do not cross the faulty link are still decided
    assert rep.matrix["field"]["gateway"][22].verdict == "ok"


def test_flat_has_nothing_to_check() -> None:
    r = _gridgate("lab", "check", "flat", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"profile": "flat", "verdict": "pass", "ports": [22], "matrix": {}}
    r = _gridgate("lab", "check", "flat")
    assert r.returncode == 0 and "nothing to check" in r.stdout


def test_bad_ports_are_a_usage_error() -> None:
    r = _gridgate("lab", "check", "one-way", "--ports", "502,x")
    assert r.returncode == 2 and "--ports '502,x'" in r.stderr and "Traceback" not in r.stderr


def test_verdicts() -> None:
    assert _combine({"10.0.0.1": "timeout", "10.0.1.1": "open"}, None)[0] == "open"
    assert _combine({"10.0.0.1": "timeout", "10.0.1.1": "blocked"}, None)[0] == "closed"
    assert _combine({"10.0.0.1": "timeout"}, "link x has scheduled faults")[0] == "unknown"
    assert _combine({"10.0.0.1": "blocked"}, "link x has scheduled faults")[0] == "closed"  # our own filter: certain
    assert _combine({"10.0.0.1": "refused"}, None)[0] == "unknown"  # a host answered, not our listener
    assert _combine({"10.0.0.1": "no-banner"}, None)[0] == "unknown"
    assert Cell("closed", "open", "").verdict == "breach" and Cell("open", "closed", "").verdict == "missing"
    assert Cell("open", "unknown", "").verdict == "unknown" and Cell("closed", "closed", "").verdict == "ok"
