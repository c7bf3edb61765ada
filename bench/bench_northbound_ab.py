"""Two trees back to back: the spool's CPU cost per value (spool off → on) at QoS 0 and QoS 1, live.

    python bench/bench_northbound_ab.py --before /tmp/base-tree [--after .] [--rounds 14] [--live 50000]

Each run is ``bench/bench_northbound.py``'s ``live`` (lists of 1000 values through ``publish_many``
until all are written or acknowledged; CPU time of the publisher's process) in a process of its
own, importing the tree it measures. A round runs the eight configurations (tree × QoS × spool
off/on) in shuffled order against one Mosquitto, so drift on a shared machine hits both trees
alike; medians over the rounds, and the median of each round's own on/off ratio ("paired").
Export the tree before with ``git archive <commit> | tar -x -C /tmp/base-tree``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_ONE = """
import asyncio, shutil, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from bench.bench_northbound import live
url, qos, on, n = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "on", int(sys.argv[5])
tmp = Path(tempfile.mkdtemp(prefix="gg-ab-"))
try:
    print(asyncio.run(live(url, n, 300, qos, tmp / "spool" if on else None))[1])
finally:
    shutil.rmtree(tmp, ignore_errors=True)
"""


def run_one(tree: Path, url: str, qos: int, spool: str, n: int) -> float:
    out = subprocess.run([sys.executable, "-c", _ONE, str(tree), url, str(qos), spool, str(n)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{tree}: live run (qos {qos}, spool {spool}) failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="the tree to compare against (a git archive export)")
    ap.add_argument("--after", type=Path, default=ROOT, help="the tree under test (default: this one)")
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--live", type=int, default=50_000, help="values per run")
    a = ap.parse_args()
    trees = {"before": a.before.resolve(), "after": a.after.resolve()}
    for name, tree in trees.items():
        if not (tree / "bench" / "bench_northbound.py").exists():
            ap.error(f"--{name} {tree}: no bench/bench_northbound.py there; give a gridgate tree")
    sys.path.insert(0, str(ROOT))
    from tests.support.mosquitto import Mosquitto

    res: dict[tuple[str, int, str], list[float]] = {}
    loads = []
    with Mosquitto(extra="max_inflight_messages 1000\nmax_queued_messages 0\n") as broker:
        for _ in range(a.rounds):
            loads.append(os.getloadavg()[0])
            jobs = [(t, q, s) for t in trees for q in (0, 1) for s in ("off", "on")]
            random.shuffle(jobs)
            for t, q, s in jobs:
                res.setdefault((t, q, s), []).append(run_one(trees[t], broker.url, q, s, a.live))
    loads.append(os.getloadavg()[0])
    print(f"{a.rounds} rounds of {a.live} values, load average (1 min) {min(loads):.1f}-{max(loads):.1f}")
    for t in trees:
        for q in (0, 1):
            off, on = res[(t, q, "off")], res[(t, q, "on")]
            mo, mn = statistics.median(off), statistics.median(on)
            paired = statistics.median(b / x for x, b in zip(off, on))
            print(f"{t:6} QoS {q}: publisher CPU µs/value, spool off {mo:.2f} → on {mn:.2f}: {100 * (mn / mo - 1):+.1f} %"
                  f" ({mn - mo:+.2f} µs; paired {100 * (paired - 1):+.1f} %)")


if __name__ == "__main__":
    main()
