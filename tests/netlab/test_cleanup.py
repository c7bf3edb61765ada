"""Teardown: nothing of a lab survives its exit, an exception, or a SIGKILL of the process
that owns it (the whole lab lives in one unshared namespace tree)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devices.netlab import Lab
from tests.netlab.conftest import PY, needs_lab, needs_tun

pytestmark = [needs_lab, pytest.mark.netns]


def _in_use(kind: str = "net") -> set[int]:
    """Namespaces of ``kind`` that some live process is in. Zombies are skipped: they have
    released their namespaces already (their credentials still name the user namespace
    until the parent reaps them, which is the parent's business, not a leak)."""
    inodes = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                inodes.add(os.stat(p / "ns" / kind).st_ino)
            except OSError:
                pass
    return inodes


def _lab_ns(holder: int) -> dict[str, int]:
    """The lab's user and mount namespaces: they pin every zone (named netns are bind
    mounts inside that mount namespace), so no process left in them means no zone left."""
    return {k: os.stat(f"/proc/{holder}/ns/{k}").st_ino for k in ("user", "mnt", "net")}


def _lab_alive(ns: dict[str, int], zones: set[int]) -> bool:
    return any(ns[k] in _in_use(k) for k in ("user", "mnt", "net")) or bool(zones & _in_use("net"))


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _wait(cond, timeout: float = 5.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@needs_tun
def test_exit_and_exception_leave_nothing_behind() -> None:
    host_netns = os.stat("/proc/self/ns/net").st_ino
    with pytest.raises(RuntimeError, match="boom"):
        with Lab("wan-cellular") as lab:
            inodes = set(lab.netns_inodes().values())
            holder, run_dir = lab.holder_pid, lab.run_dir
            ns = _lab_ns(holder)
            sleeper = lab.popen("field", ["sleep", "60"])
            assert host_netns not in inodes and len(inodes) == 4  # field, gateway, control, r-north
            assert _wait(lambda: lab.netns_inodes()["field"] in _in_use("net"))  # the sleeper
            assert _lab_alive(ns, inodes)
            raise RuntimeError("boom")
    assert _wait(lambda: _gone(holder)) and sleeper.poll() is not None
    assert _wait(lambda: not _lab_alive(ns, inodes))
    assert not run_dir.exists()


@pytest.mark.parametrize("victim", ["owner", "holder"])
def test_sigkill_of_the_lab_process_leaves_nothing_behind(victim: str) -> None:
    """SIGKILL the process that owns the Lab, or the lab's own PID 1 (the holder)."""
    code = (
        "import json,os,sys,time\n"
        "from devices.netlab import Lab\n"
        "lab = Lab('segmented').__enter__()\n"
        "p = lab.popen('field', ['sleep', '60'])\n"
        "print(json.dumps({'holder': lab.holder_pid, 'unshare': lab._unshare.pid, 'inodes': list(lab.netns_inodes().values()),"
        " 'ns': {k: os.stat(f'/proc/{lab.holder_pid}/ns/{k}').st_ino for k in ('user', 'mnt', 'net')},"
        " 'sleeper': p.pid, 'run_dir': str(lab.run_dir)}), flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    info: dict = {}
    try:
        info = json.loads(owner.stdout.readline())
        inodes, ns = set(info["inodes"]), info["ns"]
        assert _lab_alive(ns, inodes)
        if victim == "owner":
            owner.send_signal(signal.SIGKILL)
            owner.wait(5)
        else:
            os.kill(info["holder"], signal.SIGKILL)
        assert _wait(lambda: _gone(info["holder"]) and _gone(info["unshare"])), "holder survived its owner"
        assert _wait(lambda: not _lab_alive(ns, inodes)), "a lab namespace is still in use"
        if victim == "owner":
            assert _wait(lambda: not Path(info["run_dir"]).exists()), "the holder did not remove the run dir"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(5)
        if info:  # a SIGKILLed holder cannot tidy its files (no namespaces involved): do it here
            shutil.rmtree(info["run_dir"], ignore_errors=True)


def test_failed_start_cleans_up_and_says_why() -> None:
    from devices.netlab import LabError

    lab = Lab("segmented", startup_timeout=0.001)
    with pytest.raises(LabError, match="did not start within"):
        lab.__enter__()
    assert lab._unshare is None and lab.run_dir is None
