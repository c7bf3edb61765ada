"""CPU cost of the gateway's own part of a value: Reading → normaliser → CIM payload bytes,
in one process with a sink that only counts (no MQTT, no driver), on the bench site.

Prints values per CPU-second for full and compact payloads; every reading changes
(deadband 0), so every reading is a publication.

    python bench/bench_pipeline.py [--points 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import site  # noqa: E402
from bench.support import load_average  # noqa: E402
from gateway.cim import build_catalog  # noqa: E402
from gateway.config import Config  # noqa: E402
from gateway.normaliser import Normaliser  # noqa: E402
from gateway.pipeline import Reading  # noqa: E402


def run(points: int, rounds: int, payload: str) -> dict:
    data = site(points, 20, 1.0)
    data["gateway"]["northbound"]["payload"] = payload
    catalog = build_catalog(Config.model_validate(data))
    sent = [0, 0]

    def sink(p) -> None:
        sent[0] += 1
        sent[1] += len(p.payload)

    norm = Normaliser(catalog, sink)
    keys = [(k, f"holding:{i}") for i, k in enumerate(catalog)]
    base = time.time()
    cpu0 = time.process_time()
    for r in range(rounds):
        now = base + r * 0.5
        for i, (k, addr) in enumerate(keys):
            norm(Reading(k, (i % 100) * 10.0 + r * 0.7, 0 if i % 50 else 0x80 | 0x03, now, addr))
    cpu = time.process_time() - cpu0
    return {"points": len(catalog), "payload": payload, "values": sent[0], "cpu_s": round(cpu, 3),
            "values_per_cpu_s": round(sent[0] / cpu), "bytes_per_value": round(sent[1] / sent[0]),
            "load_average": load_average()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    for payload in ("full", "compact"):
        print(json.dumps(run(args.points, args.rounds, payload)), flush=True)


if __name__ == "__main__":
    main()
