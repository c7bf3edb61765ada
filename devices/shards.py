"""``gridgate emulate --processes N|auto``: the devices of one config spread over N processes.

Why: one Python process serves about 10,000 polled devices (bench/bench_emulator_scale.py); a
machine with more cores serves more from one command. Each shard is a ``gridgate emulate
--shard I/N`` child that serves every N-th enabled device (round robin, so devices of every kind
spread evenly) and runs the whole site's firmware: the firmware is deterministic in seed and
time, so every shard computes the same values a single process would (at the cost of the
firmware's tick, about 2 ms per 100,000 points, in each shard). Each shard validates the site
and compiles it in a forked child and keeps only its own devices' endpoints and the compiled
plan (devices/emusite.py); the parent reads only the devices' names.

The fault-injection API is not opened when sharded: it injects into the devices of its own
process, and one API per shard would each need its own state file. Use ``--processes 1`` (the
default) to script faults; the parent says so when it starts. ``--metrics`` is refused for the
same reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Sequence, TypeVar

T = TypeVar("T")


def parse_processes(text: str) -> int:
    """``auto`` → one per core the process may run on; else a positive integer."""
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"--processes {text!r}: give a positive number of processes or 'auto' (one per core)")
    return n


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: give I/N with 0 <= I < N")
    return i, n


def shard_of(names: Sequence[T], shard: tuple[int, int]) -> list[T]:
    """The devices shard I of N serves: every N-th, starting at I."""
    i, n = shard
    return list(names[i::n])


def run_shards(n: int, child_args: list[str]) -> int:
    """Start N shard processes, wait for them; SIGINT/SIGTERM are passed on. Exit code: the worst child's."""
    procs = [subprocess.Popen([sys.executable, "-m", "gateway.cli", "emulate", *child_args, "--shard", f"{i}/{n}"])
             for i in range(n)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(p.poll() is None for p in procs):
            if not stopping and any(p.returncode not in (None, 0) for p in procs):
                failed = next(p for p in procs if p.returncode not in (None, 0))
                print(f"emulate: shard {procs.index(failed)}/{n} exited with code {failed.returncode}; stopping the "
                      "others", file=sys.stderr, flush=True)
                stop(signal.SIGTERM, None)
            time.sleep(0.2)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return max((abs(p.returncode) for p in procs if p.returncode and p.returncode != -signal.SIGTERM), default=0)
