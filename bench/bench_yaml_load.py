"""Parsing a site file into Python data: the C builder (gateway/site/_yamlfast.c) against the PyYAML
path of ``load_yaml(path, lines=False)``, in one process, alternated, CPU-seconds and their ratio.

The sites are the gateway bench's (``--points``, 20 devices) and, with ``--emulator``, the emulator
scale bench's 9,500-device site (55 MB); the files are written to a temporary folder and removed.

    python bench/bench_yaml_load.py [--points 10000] [--emulator 9500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import site  # noqa: E402
from bench.support import below_ephemeral  # noqa: E402
from gateway.site import load  # noqa: E402


def cpu(path: Path, fast: object) -> tuple[float, object]:
    load._fast_load = fast  # type: ignore[assignment]
    t = time.process_time()
    data, _ = load.load_yaml(path, lines=False)
    return time.process_time() - t, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--emulator", type=int, default=0, help="also the emulator bench's site of this many devices")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    fast = load._fast_load
    if fast is None:
        sys.exit("gateway.site._yamlfast is not built (needs libyaml-dev and a compiler: ./run setup)")
    with tempfile.TemporaryDirectory(prefix="gg-bench-yaml-") as d:
        files = {f"{args.points} points": site(args.points, 20, 0.5)}
        if args.emulator:
            data = site(args.emulator * 20, args.emulator, 1.0)
            for dev, port in zip(data["devices"], below_ephemeral(args.emulator, None)):
                dev["port"] = port
            files[f"{args.emulator} emulator devices"] = data
        for name, data in files.items():
            path = Path(d) / "site.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            del data
            py, c = [], []
            for _ in range(args.rounds):
                t_py, slow = cpu(path, None)
                t_c, quick = cpu(path, fast)
                assert quick == slow, "the C builder and PyYAML disagree"
                py.append(t_py)
                c.append(t_c)
                del slow, quick
            print(json.dumps({"site": name, "mb": round(path.stat().st_size / 1e6, 1),
                              "pyyaml_cpu_s": [round(x, 2) for x in py], "c_cpu_s": [round(x, 2) for x in c],
                              "ratio_best": round(min(py) / min(c), 1), "load": round(os.getloadavg()[0], 1)}),
                  flush=True)
    load._fast_load = fast


if __name__ == "__main__":
    main()
