"""Two trees back to back: the spool's CPU cost per value (spool off → on) at QoS 0 and QoS 1, live.

    python bench/bench_northbound_ab.py --before /tmp/base-tree [--after .] [--rounds 14] [--live 50000]
                                        [--out runs.jsonl] [--pool runs.jsonl]

Each run is ``bench/bench_northbound.py``'s ``live`` (lists of 1000 values through ``publish_many``
until all are written or acknowledged; CPU time of the publisher's process) in a process of its
own, importing the tree it measures. A round runs the eight configurations (tree × QoS × spool
off/on) in shuffled order against one Mosquitto, so drift on a shared machine hits both trees
alike; medians over the rounds, and the median of each round's own on/off ratio ("paired").
Export the tree before with ``git archive <commit> | tar -x -C /tmp/base-tree``.

``--out`` appends every round's figures to a JSON-lines file; ``--pool`` prints the same summary over all
rounds in such a file (several sets together: one set of 14 rounds on a shared machine can move by ±0.4 µs).
"""

from __future__ import annotations

import argparse
import json
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


def summary(rounds: list[dict], title: str) -> None:
    """Medians over ``rounds`` (each: tree -> "qos/spool" -> CPU µs per value) and of each round's on/off ratio."""
    print(title)
    for t in ("before", "after"):
        for q in (0, 1):
            off = [r[t][f"{q}/off"] for r in rounds]
            on = [r[t][f"{q}/on"] for r in rounds]
            mo, mn = statistics.median(off), statistics.median(on)
            paired = statistics.median(b / x for x, b in zip(off, on))
            print(f"{t:6} QoS {q}: publisher CPU µs/value, spool off {mo:.2f} → on {mn:.2f}: {100 * (mn / mo - 1):+.1f} %"
                  f" ({mn - mo:+.2f} µs; paired {100 * (paired - 1):+.1f} %)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, help="the tree to compare against (a git archive export); needed unless --pool")
    ap.add_argument("--after", type=Path, default=ROOT, help="the tree under test (default: this one)")
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--live", type=int, default=50_000, help="values per run")
    ap.add_argument("--out", type=Path, help="append each round's figures (JSON lines) to this file")
    ap.add_argument("--pool", type=Path, help="only summarise the rounds in this --out file (all sets together)")
    a = ap.parse_args()
    if a.pool is not None:
        rounds = [json.loads(line) for line in a.pool.read_text().splitlines() if line.strip()]
        if not rounds:
            ap.error(f"--pool {a.pool}: no rounds in it; write some with --out")
        loads = [x for r in rounds for x in r["load"]]
        summary(rounds, f"{len(rounds)} rounds pooled from {a.pool}, load average (1 min) {min(loads):.1f}-{max(loads):.1f}")
        return
    if a.before is None:
        ap.error("--before DIR is needed (a tree to compare against), unless --pool only summarises an --out file")
    trees = {"before": a.before.resolve(), "after": a.after.resolve()}
    for name, tree in trees.items():
        if not (tree / "bench" / "bench_northbound.py").exists():
            ap.error(f"--{name} {tree}: no bench/bench_northbound.py there; give a gridgate tree")
    sys.path.insert(0, str(ROOT))
    from tests.support.mosquitto import Mosquitto

    rounds: list[dict] = []
    loads = []
    with Mosquitto(extra="max_inflight_messages 1000\nmax_queued_messages 0\n") as broker:
        for _ in range(a.rounds):
            load = [os.getloadavg()[0]]
            jobs = [(t, q, s) for t in trees for q in (0, 1) for s in ("off", "on")]
            random.shuffle(jobs)
            one: dict = {"load": load, "live": a.live}
            for t, q, s in jobs:
                one.setdefault(t, {})[f"{q}/{s}"] = run_one(trees[t], broker.url, q, s, a.live)
            load.append(os.getloadavg()[0])
            loads += load
            rounds.append(one)
            if a.out is not None:
                with a.out.open("a") as f:
                    f.write(json.dumps(one) + "\n")
    summary(rounds, f"{a.rounds} rounds of {a.live} values, load average (1 min) {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
