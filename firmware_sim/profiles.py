"""Daily load shapes: 48 half-hourly values (GB settlement periods 1..48), peak 1.0.

Value j applies at the start of half hour j (00:00, 00:30, ...); between them the
firmware interpolates linearly. Shapes are smooth sums of bumps, rounded to 3 decimals,
typical of GB demand: domestic evening peak, commercial office day, flat-ish industrial.
"""

from __future__ import annotations

import math


def _shape(base: float, bumps: list[tuple[float, float, float]]) -> tuple[float, ...]:
    vals = []
    for j in range(48):
        h = j / 2
        v = base
        for centre, width, height in bumps:
            d = min(abs(h - centre), 24 - abs(h - centre))
            v += height * math.exp(-0.5 * (d / width) ** 2)
        vals.append(v)
    peak = max(vals)
    return tuple(round(v / peak, 3) for v in vals)


SHAPES: dict[str, tuple[float, ...]] = {
    "domestic": _shape(0.3, [(7.75, 1.0, 0.25), (13.0, 2.5, 0.15), (18.0, 1.6, 0.6)]),
    "commercial": _shape(0.25, [(12.5, 3.6, 0.75)]),
    "industrial": _shape(0.6, [(11.0, 4.5, 0.35)]),
    "mixed-feeder": _shape(0.35, [(8.0, 1.2, 0.2), (12.5, 3.5, 0.3), (18.0, 1.6, 0.45)]),
    "flat": tuple([1.0] * 48),
}


def shape_values(shape: str | list[float]) -> tuple[float, ...]:
    """The 48 values of a named or custom shape, scaled so the maximum is 1."""
    vals = SHAPES[shape] if isinstance(shape, str) else tuple(float(v) for v in shape)
    peak = max(abs(v) for v in vals) or 1.0
    return tuple(v / peak for v in vals)
