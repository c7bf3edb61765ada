"""Sparkplug B publishing cost per value: the DDATA encoder, and a reading's whole way through the
Sparkplug outbox (queued as a reading, encoded with the session's seq when taken). CPU µs per value,
best of 5 runs, no broker (the MQTT write is the publisher's, measured by bench_northbound.py).

    python bench/bench_sparkplug.py [--values 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import load_average  # noqa: E402
from gateway.northbound.sparkplug import SparkplugNode  # noqa: E402
from gateway.northbound.sparkplug_outbox import SparkplugOutbox  # noqa: E402


def cpu_us(fn: Callable[[], None], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--values", type=int, default=20000, help="values per run")
    n = ap.parse_args().values
    names = [f"F{i % 10}/CB/LineCurrent/A{i}" for i in range(100)]
    node = SparkplugNode("g", "e", {"relay": [(m, "Double", {"engUnit": "A", "mRID": "x"}) for m in names]})
    node.will()
    node.node_birth()
    box = SparkplugOutbox(n + 10, lambda d, m, v, f, t, h: node.device_data(d, [(m, v, f, t)], historical=h),
                          lambda: True, lambda: node.bd_seq)

    def encode() -> None:
        for i in range(n):
            node.device_data("relay", [(names[i % 100], 412.5 + i, 0, 1_790_000_000.123 + i)])

    def through_outbox() -> None:
        for i in range(n):
            box.add(("relay", names[i % 100], 412.5 + i, 0, 1_790_000_000.123 + i, True, node.bd_seq))
            item = box.take()
            assert item is not None
            box.done(item[0])

    print(f"DDATA encode:               {cpu_us(encode, n):5.1f} µs CPU/value")
    print(f"reading → outbox → DDATA:   {cpu_us(through_outbox, n):5.1f} µs CPU/value")
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
