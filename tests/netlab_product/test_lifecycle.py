"""Lifecycle of a profile run: a profile that does not allow the devices' ports fails with a
message saying what to add; SIGTERM ends a run cleanly (gateway shuts down, summary printed)
and nothing — lab holder, namespaces, zone processes, temp files — is left behind."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devices.netlab.run import run_with_profile
from tests.netlab_product.conftest import (
    PY,
    REPO,
    deadline,
    descendants,
    last_json_line,
    needs_lab,
    profile_args,
)

pytestmark = [needs_lab, pytest.mark.netns]

NO_MMS = """name: no-mms
zones: {field: {}, gateway: {}, control: {}}
links:
  - {name: south, a: field, b: gateway}
  - {name: north, a: gateway, b: control}
allow:
  - {from: gateway, to: field, proto: tcp, ports: [502, 20000]}
  - {from: gateway, to: control, proto: tcp, ports: [1883]}
gateway: {northbound: mqtt, subscribe: false, accept_commands: false}
"""


def test_profile_that_blocks_a_protocol_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prof = tmp_path / "no-mms.yaml"
    prof.write_text(NO_MMS)
    before = set(glob.glob(f"/tmp/gg-netlab-{os.getpid()}-*"))
    with deadline(30):
        rc = run_with_profile("demo", profile_args("demo", str(prof), 5, "--json"))
    err = capsys.readouterr().err
    assert rc == 1
    assert "iec61850 device ied-f1 needs tcp port 102" in err and "add 102 to the gateway→field allow rule" in err
    assert "Traceback" not in err
    assert set(glob.glob(f"/tmp/gg-netlab-{os.getpid()}-*")) == before and descendants() == []


def test_unknown_profile_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_with_profile("gateway", profile_args("gateway", "no-such-profile", 1)) == 1
    err = capsys.readouterr().err
    assert "no such profile" in err and "one-way" in err  # lists the choices


def test_sigterm_stops_cleanly_and_leaves_nothing(tmp_path: Path) -> None:
    script = ("import sys; from tests.netlab_product.conftest import profile_args; from devices.netlab.run import run_with_profile; "
              "sys.exit(run_with_profile('gateway', profile_args('gateway', 'one-way', 60)))")
    p = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    try:
        deadline_t = time.monotonic() + 30
        kids: list[int] = []
        while time.monotonic() < deadline_t:  # running: the unshare'd holder and the zone programs exist
            kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
            if len(kids) >= 4:  # unshare + mosquitto + emulator + gateway
                break
            time.sleep(0.2)
        assert len(kids) >= 4, kids
        time.sleep(2)  # gateway up and publishing
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 0, err
    summary = last_json_line(err)
    assert summary["gateway_exit"] == 0 and summary["gateway"]["sent"] > 0 and summary["seconds"] < 30
    for k in kids:
        assert not Path(f"/proc/{k}").exists(), f"process {k} survived the run"
    assert glob.glob(f"/tmp/gg-netlab-{p.pid}-*") == []


def test_lab_check_prints_the_reachability_matrix() -> None:
    r = subprocess.run([PY, "-m", "gateway.cli", "lab", "check", "one-way", "--json", "--ports", "502,1883,22"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["verdict"] == "pass"
    m = {s: {d: {p: c["observed"] for p, c in cells.items()} for d, cells in row.items()} for s, row in rep["matrix"].items()}
    assert m["gateway"]["field"]["502"] == "open" and m["gateway"]["control"]["1883"] == "open"
    assert m["gateway"]["control"]["22"] == "closed" and m["gateway"]["field"]["22"] == "closed"
    for src, dst in (("control", "gateway"), ("control", "field"), ("field", "gateway"), ("field", "control")):
        assert set(m[src][dst].values()) == {"closed"}, (src, dst, rep["matrix"][src][dst])
