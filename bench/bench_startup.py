"""Gateway start-up cost by phase, without a network: load the config, build the catalog,
build the gateway (drivers, normaliser), and the RSS after each phase; each size twice,
cold and then warm (a restart: a site file large enough to be loaded in a child process is
compiled and cached by the first run, ``loaded_from`` says which).

Each size runs in a fresh child process so RSS figures do not carry over.

    python bench/bench_startup.py [--points 1000 10000 50000] [--devices 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return round(next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024, 1)


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the config loader runs in one)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(path: str) -> dict:
    """Runs in the child: time and RSS of each start-up phase of one gateway."""
    import time

    out: dict = {"rss_start_mib": _rss_mib()}
    c0 = _cpu()
    t0 = time.perf_counter()
    from gateway.cli import build

    try:
        build("gateway")  # what `gridgate gateway` imports before it loads the site
    except TypeError:  # a tree from before the lean gateway command (to measure "before")
        build()
    from gateway.app import Gateway, GatewayOptions  # noqa: F401 - the import cost is part of start-up

    try:
        from gateway.startup import load_gateway_site  # runtime tables + catalog, cached (issue 18)
    except ImportError:  # a tree from before it (to measure "before")
        load_gateway_site = None

    out["import_s"] = round(time.perf_counter() - t0, 3)
    out["rss_imports_mib"] = _rss_mib()
    t = time.perf_counter()
    if load_gateway_site is not None:  # as `gridgate gateway` loads it: the catalog comes with the tables
        site = load_gateway_site(path)
        out["load_config_s"] = round(time.perf_counter() - t, 3)
        out["loaded_from"] = site.source
        out["rss_config_mib"] = _rss_mib()
        cfg, catalog = site.cfg, site.catalog
        out["build_catalog_s"] = 0.0
        out["points"] = len(catalog)
        del site
    else:
        from gateway.cim import build_catalog
        from gateway.config import load_config

        try:
            cfg = load_config(path, gateway_only=True)  # as `gridgate gateway` loads it
        except TypeError:  # a tree from before gateway-only loading (to measure "before")
            cfg = load_config(path)
        out["load_config_s"] = round(time.perf_counter() - t, 3)
        out["rss_config_mib"] = _rss_mib()
        t = time.perf_counter()
        catalog = build_catalog(cfg)
        out["build_catalog_s"] = round(time.perf_counter() - t, 3)
        out["points"] = len(catalog)
    t = time.perf_counter()
    opts = GatewayOptions(broker="mqtt://127.0.0.1:1")  # never started: nothing connects
    gw = Gateway(cfg, opts, catalog=catalog) if load_gateway_site is not None else Gateway(cfg, opts)
    out["build_gateway_s"] = round(time.perf_counter() - t, 3)
    out["rss_gateway_mib"] = _rss_mib()
    out["total_s"] = round(time.perf_counter() - t0, 3)
    out["total_cpu_s"] = round(_cpu() - c0, 3)  # wall times stretch on a loaded machine, CPU seconds much less
    out["pydantic_imported"] = "pydantic" in sys.modules  # a restart from the compiled tables needs none of it
    del gw
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, nargs="+", default=[1000, 10000, 50000])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="gg-bench-startup-") as d:
        run_sizes(args, Path(d))


def run_sizes(args: argparse.Namespace, tmp: Path) -> None:
    from bench.bench_gateway import site  # here, not at the top: the child's RSS and imports are the gateway's only

    for n in args.points:
        cfg = tmp / f"site-{n}.yaml"
        cfg.write_text(yaml.safe_dump(site(n, args.devices, 1.0), sort_keys=False))
        env = dict(os.environ, GRIDGATE_CACHE_DIR=str(tmp / f"cache-{n}"))
        for run in ("cold", "warm"):  # warm: a restart, from the cold run's cache where the file is large enough
            r = subprocess.run([sys.executable, __file__, "--child", str(cfg)], cwd=ROOT, capture_output=True, text=True,
                               timeout=900, env=env)
            if r.returncode != 0:
                print(f"{n} points: failed\n{r.stderr}", file=sys.stderr)
                break
            print(json.dumps({"points_asked": n, "run": run, **json.loads(r.stdout.strip().splitlines()[-1]),
                              "load_average_1m": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
