"""CGMES export/import on a large site (default 10,000 points): time and peak memory.

    python bench/bench_cgmes.py              # 10,000 points (1,000 feeder bays)
    python bench/bench_cgmes.py --points 2000
    python bench/bench_cgmes.py --memory    # peak traced memory too (times inflated)

Prints, per step: lxml export (the product's writer), lxml streaming read + site build (the
product's reader), and, for comparison, rdflib parsing the same document (the independent
reader the tests use; an RDF library of the kind the CGMES choice was made against).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import load_average  # noqa: E402
from gateway.config import Config  # noqa: E402

KINDS = [("ThreePhaseActivePower", "k", "ABC", "FDR"), ("ThreePhaseReactivePower", "k", "ABC", "FDR"),
         ("LineCurrent", "none", "A", "FDR"), ("LineCurrent", "none", "B", "FDR"), ("LineCurrent", "none", "C", "FDR"),
         ("PhaseVoltage", "none", "AN", "FDR"), ("Frequency", "none", "none", "FDR"), ("SwitchPosition", "none", "none", "CB"),
         ("ActiveEnergy", "k", "none", "FDR"), ("ProtectionOperate", "none", "none", "CB")]
GROUP = {"SwitchPosition": "double_binary", "ActiveEnergy": "counter", "ProtectionOperate": "binary"}


def big_site(points: int) -> Config:
    feeders = max(1, points // len(KINDS))
    bays = [{"name": "T1", "voltage_kv": 33, "equipment": [{"name": "TX", "type": "PowerTransformer"},
                                                           {"name": "CB", "type": "Breaker"}]},
            {"name": "INC1", "voltage_kv": 11, "equipment": [{"name": "CB", "type": "Breaker"}]},
            {"name": "BB", "voltage_kv": 11, "equipment": [{"name": "BB1", "type": "BusbarSection"}]}]
    devices, pts, index = [], [], {}
    for f in range(feeders):
        bays.append({"name": f"F{f}", "voltage_kv": 11, "equipment": [{"name": "CB", "type": "Breaker"},
                                                                      {"name": "FDR", "type": "ACLineSegment"}]})
        for mtype, mult, ph, eq in KINDS:
            g = GROUP.get(mtype, "analog")
            index[g] = index.get(g, -1) + 1
            meas = {"equipment": f"S/F{f}/{eq}", "type": mtype, "multiplier": mult, "phases": ph}
            pts.append({"name": f"F{f}_{mtype}_{ph}", "group": g, "index": index[g], "measurement": meas})
            if len(pts) == 5000:
                devices.append({"name": f"rtu{len(devices)}", "kind": "rtu", "protocol": "dnp3", "port": 20000 + len(devices),
                                "points": pts})
                pts, index = [], {}
    if pts:
        devices.append({"name": f"rtu{len(devices)}", "kind": "rtu", "protocol": "dnp3", "port": 20000 + len(devices), "points": pts})
    return Config.model_validate({"site": {"name": "BIG"}, "substations": [{"name": "S", "bays": bays}], "devices": devices})


MEMORY = False


def timed(fn):
    """(result, seconds, peak MB); the peak only with --memory (tracemalloc slows Python code several-fold)."""
    if MEMORY:
        tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] if MEMORY else 0
    tracemalloc.stop()
    return out, round(dt, 2), round(peak / 2**20, 1) if MEMORY else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--no-rdflib", action="store_true", help="leave out the rdflib comparison")
    ap.add_argument("--memory", action="store_true", help="also peak Python memory (slower: times are then inflated)")
    args = ap.parse_args()
    global MEMORY
    MEMORY = args.memory
    import tempfile

    from gateway.cgmes.export import export
    from gateway.cgmes.importer import build_site
    from gateway.cgmes.model import read

    cfg = big_site(args.points)
    n = sum(len(d.points) for d in cfg.devices)
    docs, t_exp, m_exp = timed(lambda: export(cfg))
    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        f.write(docs["eq"])
        f.flush()
        res, t_imp, m_imp = timed(lambda: build_site(read([f.name])))
    out = {"points": n, "document_MB": round(len(docs["eq"]) / 2**20, 1),
           "export_s": t_exp, "export_peak_MB": m_exp, "import_s": t_imp, "import_peak_MB": m_imp,
           "imported_points": sum(len(d["points"]) for d in res.site["devices"])}
    if not args.no_rdflib:
        from rdflib import Graph

        g, t_rdf, m_rdf = timed(lambda: Graph().parse(data=docs["eq"], format="xml", publicID="urn:x"))
        out.update(rdflib_parse_s=t_rdf, rdflib_parse_peak_MB=m_rdf, triples=len(g))
    out["load_average"] = load_average()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
