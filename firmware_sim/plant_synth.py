"""Synthetic primary substations for the oracle tests and the solve-time bench.

A 33 kV source, ``transformers`` 33/11.5 kV units each with an HV breaker and an 11 kV
incomer onto its own busbar section, bus-section breakers between neighbouring sections
and ``feeders`` feeder breakers and loads spread over the sections.
"""

from __future__ import annotations

import math
import random

from firmware_sim.plant import Busbar, PlantData, Source, Switch, Transformer, load

SHAPES = ("domestic", "commercial", "industrial", "mixed-feeder")


def transformer(name: str, hv: str, lv: str, mva: float = 15.0, z_pct: float = 10.0, x_r: float = 12.0,
                hv_kv: float = 33.0, lv_kv: float = 11.5, step_pct: float = 1.25, taps: tuple[int, int, int] = (1, 9, 17),
                tap: int | None = None, avc=None, earthing: float = 6.35, vector_group: str = "Dyn11") -> Transformer:
    """A two-winding transformer from nameplate values (impedance % on its rating, LV-referred)."""
    z = z_pct / 100.0 * (lv_kv * 1e3) ** 2 / (mva * 1e6)
    r = z / math.sqrt(1.0 + x_r * x_r)
    lo, neutral, hi = taps
    return Transformer(name, hv, lv, r, r * x_r, lv_kv / hv_kv, step_pct / 100.0, neutral, lo, hi,
                       neutral if tap is None else tap, avc, earthing, vector_group)


def source(name: str, node: str, kv: float = 33.0, ssc_mva: float = 750.0, x_r: float = 10.0) -> Source:
    """An upstream grid infeed from its short-circuit level."""
    z = (kv * 1e3) ** 2 / (ssc_mva * 1e6)
    r = z / math.sqrt(1.0 + x_r * x_r)
    return Source(name, node, kv * 1e3, r, r * x_r)


def primary(feeders: int, transformers: int = 2, seed: int = 0, bus_section_closed: bool = True) -> PlantData:
    rnd = random.Random(seed)
    txs, sws, lds, bbs = [], [], [], []
    for k in range(transformers):
        txs.append(transformer(f"T{k + 1}", f"HV{k + 1}", f"LV{k + 1}", tap=rnd.randint(7, 11)))
        sws.append(Switch(f"T{k + 1}/HVCB", "HV33", f"HV{k + 1}"))
        sws.append(Switch(f"INC{k + 1}", f"LV{k + 1}", f"BB{k + 1}"))
        bbs.append(Busbar(f"BB{k + 1}", f"BB{k + 1}"))
        if k:
            sws.append(Switch(f"BS{k}", f"BB{k}", f"BB{k + 1}", closed=bus_section_closed))
    for f in range(feeders):
        sec = f % transformers + 1
        sws.append(Switch(f"F{f + 1}/CB", f"BB{sec}", f"F{f + 1}"))
        peak = rnd.uniform(2e6, 5e6) * 2 * transformers / max(feeders, 1) * 3 / 2
        lds.append(load(f"F{f + 1}", f"F{f + 1}", peak, rnd.uniform(0.9, 0.99), rnd.choice(SHAPES),
                        noise=rnd.choice((0.0, 0.01))))
    return PlantData(source("GRID", "HV33"), txs, sws, lds, bbs)
