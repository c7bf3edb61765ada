"""SIGTERM is honoured while a large site is loading and while the gateway builds its tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from gateway.interrupt import BuildInterrupted, interruptible

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import site  # noqa: E402


def test_interruptible_raises_at_once_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    t0 = time.monotonic()
    with pytest.raises(BuildInterrupted) as e:
        with interruptible():
            while time.monotonic() - t0 < 60:  # a long synchronous build
                sum(range(1000))
    assert e.value.signum == signal.SIGTERM
    assert "SIGTERM" in str(e.value)
    assert time.monotonic() - t0 < 30
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.fixture(scope="module")
def big_site(tmp_path_factory) -> Path:
    """10,000 points: ~3 MB of YAML, loaded in a child process and built for seconds on a loaded machine."""
    path = tmp_path_factory.mktemp("big") / "site-10k.yaml"
    path.write_text(yaml.safe_dump(site(10000, 20, 1.0), sort_keys=False))
    return path


def _others_with(text: str) -> list[int]:
    """Processes (other than this one) whose command line mentions ``text``: the loader child is a fork."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmd and state != "Z":
            out.append(int(pid))
    return out


@pytest.mark.parametrize("phase", ["loading", "building drivers"])
def test_sigterm_during_startup_stops_the_gateway_promptly(big_site: Path, phase: str) -> None:
    # port 9 on loopback: nothing listens; the gateway must never get that far anyway
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "-v", "gateway", "--config", str(big_site),
                             "--broker", "mqtt://127.0.0.1:9"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stderr:  # INFO lines, written inside the interruptible block
            seen.append(line)
            if phase in line:
                break
        assert any(phase in line for line in seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        stopped_after = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert stopped_after < 30, stopped_after  # generous on a loaded machine; a full build would keep going
    if phase == "loading":  # stopped before the build: the parse child is gone too, and nothing was started
        assert "stopped by SIGTERM while starting" in err, err
        assert "measurements" not in out
        deadline = time.monotonic() + 10
        while _others_with(str(big_site)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _others_with(str(big_site)) == []
