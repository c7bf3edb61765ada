"""Run the real product (emulator, gateway, Mosquitto, conduits) inside network profiles.

Skips with the reason where user+net namespaces are unavailable. Every run is bounded by
its ``--duration`` plus an alarm, so a stuck lab fails the test instead of hanging CI."""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from devices.netlab.run import last_json
from gateway.cli import build_parser

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "configs" / "primary-substation.yaml"


from tests.support.lab import needs_lab  # noqa: F401 (re-exported for the test modules)


def profile_args(command: str, profile: str, duration: float, *extra: str):  # noqa: ANN201
    """The Namespace gateway/cli.py hands to run_with_profile for ``COMMAND --profile P``."""
    args = build_parser().parse_args([command, "--duration", str(duration), *extra])
    args.profile = profile
    return args


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (and tear the lab down through the context managers) instead of hanging."""

    def expire(_sig, _frame):  # noqa: ANN001
        raise TimeoutError(f"test exceeded {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def probe(lab, zone: str, targets: list[str], timeout: float = 0.5) -> dict[str, str]:  # noqa: ANN001
    """Outcome of a TCP connect from ``zone`` to each ``host:port`` (open/refused/blocked/timeout)."""
    r = lab.run_in(zone, [PY, "-m", "devices.netlab.probe", "connect", *targets, "--timeout", str(timeout)], timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def descendants() -> list[int]:
    """PIDs whose parent is this test process (a lab left behind would show up here)."""
    me, out = os.getpid(), []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me:
                out.append(int(d.name))
    return out


def last_json_line(text: str) -> dict:
    found = last_json(text)
    if not found:
        raise AssertionError(f"no JSON summary in output:\n{text[-2000:]}")
    return found
