"""Judge expectations against recorded samples (scenario times are seconds from tick 0).

An expectation is about the published state: it holds when the point's last published
sample at some moment in [anchor, anchor + within] matches — either a sample arriving in
the window, or the one already current at the anchor (latency 0). An order expectation
needs each event to arrive in the window, in seq order.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.scenario.model import Expectation, OrderExpectation
from devices.scenario.recorder import Sample

_VALIDITY = {"GOOD", "QUESTIONABLE", "INVALID"}
_SOURCE = {"SUBSTITUTED", "DEFAULTED"}


def quality_matches(q: dict, word: str) -> bool:
    if word in _VALIDITY:
        return q.get("validity") == word
    if word in _SOURCE:
        return q.get("source") == word
    return bool(q.get(word))


def sample_matches(s: Sample, ex: Expectation, key: str) -> bool:
    if s.key != key:
        return False
    if ex.quality is not None and not quality_matches(s.quality, ex.quality):
        return False
    if ex.value is not None or ex.above is not None or ex.below is not None:
        if not isinstance(s.value, (int, float)):
            return False
        v = float(s.value)
        if ex.value is not None and abs(v - ex.value) > ex.tolerance:
            return False
        if (ex.above is not None and not v > ex.above) or (ex.below is not None and not v < ex.below):
            return False
    return True


@dataclass
class Verdict:
    where: str  # YAML path of the expectation
    name: str
    passed: bool
    detail: str
    latency: float | None = None  # seconds from the anchor to the first matching sample


def _describe(ex: Expectation) -> str:
    parts = [ex.point]
    if ex.quality:
        parts.append(f"quality {ex.quality}")
    if ex.value is not None:
        parts.append(f"value {ex.value:g}±{ex.tolerance:g}")
    if ex.above is not None:
        parts.append(f"value > {ex.above:g}")
    if ex.below is not None:
        parts.append(f"value < {ex.below:g}")
    return " ".join(parts)


def judge(where: str, anchor: float, ex: Expectation | OrderExpectation, samples: list[Sample], t0: float,
          point_key) -> Verdict:
    """``t0`` is the wall time of scenario time 0; ``point_key`` resolves a point reference."""
    lo, hi = t0 + anchor, t0 + anchor + ex.within
    if isinstance(ex, OrderExpectation):
        name = ex.name or "order " + " → ".join(_describe(i) for i in ex.order)
        found: list[Sample] = []
        pool = sorted((s for s in samples if lo <= s.at <= hi), key=lambda s: (s.seq or 0, s.at))
        pos = 0
        for it in ex.order:
            key = point_key(it.point)
            hit = next((n for n in range(pos, len(pool)) if sample_matches(pool[n], it, key)), None)
            if hit is None:
                seen = [f"{s.key}={s.value}" for s in pool if s.key in {point_key(i.point) for i in ex.order}][:8]
                return Verdict(where, name, False,
                               f"{_describe(it)} not seen in order within {ex.within:g}s of {anchor:g}s (saw {seen})")
            found.append(pool[hit])
            pos = hit + 1
        return Verdict(where, name, True, "seq " + ", ".join(str(s.seq) for s in found), found[-1].at - lo)
    key = point_key(ex.point)
    name = ex.name or _describe(ex)
    before = [s for s in samples if s.key == key and s.at < lo]
    if before and not ex.fresh and sample_matches(before[-1], ex, key):  # a state expectation: already true at the anchor
        return Verdict(where, name, True, f"already so at {anchor:g}s (seq {before[-1].seq})", 0.0)
    for s in samples:
        if lo <= s.at <= hi and sample_matches(s, ex, key):
            return Verdict(where, name, True, f"seen {s.at - lo:.3f}s after {anchor:g}s (seq {s.seq})", s.at - lo)
    last = [x for x in samples if x.key == key and x.at <= hi][-3:]
    seen = "; ".join(f"{x.value} {x.quality.get('validity')} at {x.at - t0:.2f}s" for x in last) or "nothing published"
    return Verdict(where, name, False, f"not seen within {ex.within:g}s of {anchor:g}s; last: {seen}")
