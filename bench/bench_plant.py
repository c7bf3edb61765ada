"""Plant solve time per firmware tick: the example site (configs/primary-substation.yaml) and a synthetic 1,000-feeder primary,
C core against the Python reference. Prints figures; a few seconds at most.

    python bench/bench_plant.py [--feeders 1000] [--budget 1.0]

Each site gets one plant point per feeder (P) so the tick is the solve plus a light point pass;
the C figure is the best of three timed runs of ``bench`` (ticks without the GIL).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import load_average  # noqa: E402
from firmware_sim import Firmware, SimPoint  # noqa: E402
from firmware_sim.plant_synth import primary  # noqa: E402

T0 = 1_765_000_000.0


def firmware(plant, backend: str) -> Firmware:
    pts = [SimPoint(device="d", name=ld.name, signal={"kind": "plant", "equipment": ld.name, "quantity": "P"})
           for ld in plant.loads]
    return Firmware(pts, plant=plant, backend=backend)


def per_tick_c(fw: Firmware, budget: float) -> float:
    s = fw._s
    s.bench(T0, 0.01, 3)
    count = 1
    while True:
        t = time.perf_counter()
        s.bench(T0, 0.01, count)
        if time.perf_counter() - t > budget / 8:
            break
        count *= 4
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        s.bench(T0, 0.01, count)
        best = min(best, (time.perf_counter() - t) / count)
    return best


def per_tick_python(fw: Firmware, budget: float) -> float:
    fw.tick(T0)
    count, t = 0, time.perf_counter()
    while time.perf_counter() - t < budget and count < 200:
        count += 1
        fw.tick(T0 + 0.01 * count)
    return (time.perf_counter() - t) / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeders", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    a = ap.parse_args()
    from gateway.config import load_config

    example = load_config(Path(__file__).resolve().parents[1] / "configs" / "primary-substation.yaml").plant.runtime()
    for label, plant in (("example site (6 feeders, 2 transformers, protection and AVC)", example),
                         (f"synthetic site ({a.feeders} feeders, 2 transformers)", primary(a.feeders))):
        c = per_tick_c(firmware(plant, "c"), a.budget)
        py = per_tick_python(firmware(plant, "python"), a.budget)
        print(f"{label}: C {c * 1e6:.1f} µs/tick, Python {py * 1e6:.0f} µs/tick, ratio {py / c:.0f}x")
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
