"""`gridgate scl export|check` (devices/iec61850/scl_cli.py) as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.iec61850.support import ROOT

SITE = os.path.join(ROOT, "configs", "primary-substation.yaml")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devices.iec61850.scl_cli", "scl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))


def test_export_all_then_check(tmp_path):
    r = _run("export", SITE, "--all", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    files = sorted(os.listdir(tmp_path))
    assert files == [f"KGM_F{i}.cid" for i in range(1, 7)]
    r = _run("check", *[str(tmp_path / f) for f in files])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": OK") == 6
    r = _run("export", SITE, "--ied", "ied-f2", "-o", "-")
    assert r.returncode == 0 and '<IED name="KGM_F2"' in r.stdout


def test_errors_are_clear(tmp_path):
    r = _run("export", SITE, "--ied", "nope", "-o", str(tmp_path / "x.cid"))
    assert r.returncode == 1 and "no IEC 61850 device 'nope'" in r.stderr and "ied-f1" in r.stderr
    bad = tmp_path / "bad.cid"
    bad.write_text('<SCL xmlns="http://www.iec.ch/61850/2003/SCL"><Header id="x"/><DataTypeTemplates>'
                   '<LNodeType id="L" lnClass="LLN0"><DO name="Mod" type="Missing"/></LNodeType></DataTypeTemplates></SCL>')
    r = _run("check", str(bad))
    assert r.returncode == 1
    assert "line 1: <DO name='Mod'>: type='Missing' is not a DOType" in r.stderr


def test_cfg_without_genconfig_names_the_fix(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GRIDGATE_GENCONFIG"}
    cid = tmp_path / "f1.cid"
    cid.write_text("<SCL/>")
    r = subprocess.run([sys.executable, "-m", "devices.iec61850.scl_cli", "scl", "cfg", str(cid), "-o", str(tmp_path / "x.cfg")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, env=dict(env, PYTHONPATH=ROOT))
    assert r.returncode == 1 and "set GRIDGATE_GENCONFIG" in r.stderr and "tools/model_generator" in r.stderr
    r = _run("cfg", str(tmp_path / "missing.cid"), "-o", str(tmp_path / "x.cfg"))
    assert r.returncode == 1 and "missing.cid does not exist" in r.stderr
