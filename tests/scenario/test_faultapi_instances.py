"""One fault API state file per emulator: two `gridgate emulate` at once, `gridgate fault` says which
one it addresses, asks for --name when several run, and ignores (removes) a dead one's file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from tests.scenario.helpers import ROOT
from tests.support.sites import modbus_site
from tests.support.wait import until


async def _gridgate(env: dict, *args: str) -> tuple[int, str, str]:
    p = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", *args, cwd=ROOT, env=env,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 60)
    return p.returncode or 0, out.decode(), err.decode()


async def test_two_emulators_each_with_its_own_state_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "PYTHONPATH": str(ROOT)}
    states = run / "gridgate" / "faultapi"
    sites = []
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        sites.append(modbus_site(tmp_path / sub)[1])  # both files are site.yaml, on their own free ports
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "emulate", "--config", str(site), "--duration", "90", *extra,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        for site, extra in ((sites[0], ()), (sites[1], ("--name", "feeder")))]
    try:
        await until(lambda: {p.name for p in states.glob("*.json")} == {"site.json", "feeder.json"}, 60)
        site_pid = json.loads((states / "site.json").read_text())["pid"]
        assert site_pid == procs[0].pid and json.loads((states / "feeder.json").read_text())["config"] == str(sites[1])

        rc, out, err = await _gridgate(env, "fault", "list")
        assert rc == 2 and out == "" and "several emulators are running" in err
        assert "--name feeder" in err and "--name site" in err and str(sites[0]) in err

        rc, out, err = await _gridgate(env, "fault", "instances")
        assert rc == 0 and [line.split("\t")[0] for line in out.splitlines()] == ["feeder", "site"]

        rc, out, err = await _gridgate(env, "fault", "inject", "--name", "feeder", "--device", "meter1", "--kind", "silent",
                                       "--id", "f1")
        assert rc == 0, err
        assert f"emulator 'feeder' (pid {procs[1].pid}, config {sites[1]})" in err
        rc, out, err = await _gridgate(env, "fault", "list", "--name", "feeder")
        assert rc == 0 and [f["id"] for f in json.loads(out)] == ["f1"]
        rc, out, err = await _gridgate(env, "fault", "list", "--name", "site")
        assert rc == 0 and json.loads(out) == [] and f"emulator 'site' (pid {site_pid}" in err

        rc, out, err = await _gridgate(env, "fault", "list", "--name", "nosuch")
        assert rc == 2 and "no running emulator is named 'nosuch'" in err and "'feeder'" in err

        rc, _, err = await _gridgate(env, "emulate", "--config", str(sites[2]), "--name", "feeder", "--duration", "5")
        assert rc == 1 and "another running emulator is named 'feeder'" in err and "Traceback" not in err

        procs[1].send_signal(signal.SIGKILL)  # crashed: its state file stays behind, stale
        await procs[1].wait()
        assert (states / "feeder.json").exists()
        rc, out, err = await _gridgate(env, "fault", "list")  # the one left is addressed, and said so
        assert rc == 0 and json.loads(out) == [] and "emulator 'site'" in err, err
        assert not (states / "feeder.json").exists()
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            await asyncio.wait_for(p.wait(), 30)
    assert list(states.glob("*.json")) == []  # a clean exit removes its own file


async def test_bad_name_is_a_usage_error(tmp_path: Path) -> None:
    rc, _, err = await _gridgate({**os.environ, "PYTHONPATH": str(ROOT)}, "emulate", "--name", "../x", "--duration", "1")
    assert rc == 2 and "--name '../x'" in err


async def test_no_emulator_running(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    rc, _, err = await _gridgate({**os.environ, "XDG_RUNTIME_DIR": str(run), "PYTHONPATH": str(ROOT)}, "fault", "list")
    assert rc == 1 and "no running emulator found" in err
