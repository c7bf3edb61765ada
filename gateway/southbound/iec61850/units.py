"""Units from the IED's model: an analogue's engineering value is mag × 10^units.multiplier (× pulsQty
for counters), expressed in the point's CIM multiplier, instead of a hand-set ``scale``.

Read once per association (CF units of each analogue's data object). An IED whose model has no
units (old-style, or a user's model without them) keeps the point's ``scale``/``offset``.
"""

from __future__ import annotations

import logging

from gateway.config import MmsPoint
from gateway.southbound.iec61850.libiec import element, lib, scalar

log = logging.getLogger(__name__)

CIM_EXP = {"none": 0, "k": 3, "M": 6}
SI_UNIT = {"A": 5, "deg": 9, "V": 29, "Hz": 33, "W": 38, "VA": 61, "VAr": 63, "Wh": 72, "VArh": 73}


def holder(reference: str) -> tuple[str, bool] | None:
    """The (sub-)DO whose units describe this DA, and whether it is a counter (BCR)."""
    for tail, counter in ((".cVal.mag.f", False), (".mag.f", False), (".mag.i", False), (".actVal", True)):
        if reference.endswith(tail):
            return reference[: -len(tail)], counter
    return None


def model_factors(read, points: list[MmsPoint], device: str) -> dict[str, float]:
    """point name → factor (engineering = raw × factor) for every analogue whose model states units.

    ``read(ref, fc)`` returns a python scalar or raises; a point without units is left out."""
    out: dict[str, float] = {}
    for p in points:
        h = holder(p.reference)
        if h is None or p.measurement.kind == "Discrete":
            continue
        do, counter = h
        try:
            mult = read(f"{do}.units.multiplier", "CF")
        except Exception:  # no units in this model: the hand-set scale stays
            continue
        if not isinstance(mult, int):
            continue
        try:
            si = read(f"{do}.units.SIUnit", "CF")
        except Exception:
            si = None
        want = SI_UNIT.get(p.measurement.unit or "")
        if si is not None and want is not None and si != want:
            log.warning("%s point %s: the IED states SIUnit %s for %s, the point is %s; values passed as they are",
                        device, p.name, si, do, p.measurement.unit)
        factor = 10.0 ** (mult - CIM_EXP[p.measurement.multiplier])
        if counter:
            try:
                factor *= float(read(f"{do}.pulsQty", "CF"))
            except Exception:
                pass
        if abs(factor - p.scale) > 1e-9 * max(1.0, abs(p.scale)) or p.offset:
            log.warning("%s point %s: scale %s/offset %s replaced by the IED's units (factor %s)",
                        device, p.name, p.scale, p.offset, factor)
        out[p.name] = factor
    return out


def reader(conn):
    """read(ref, fc) → python scalar over an MmsConnection. CF reads are served from one read of the
    whole LN's CF (and its variable specification) per LN, so association costs 2 requests per LN
    instead of 3 per analogue (a 200-point IED associates in one round trip or two)."""
    from gateway.southbound.iec61850.mapping import locate

    L = lib()
    cache: dict[str, tuple[int, int] | None] = {}

    def ln_cf(ln_ref: str) -> tuple[int, int] | None:
        if ln_ref not in cache:
            try:
                cache[ln_ref] = (conn.read(ln_ref, "CF"), conn.spec(ln_ref, "CF"))
            except Exception:
                cache[ln_ref] = None
        return cache[ln_ref]

    def read(ref: str, fc: str):
        ld, _, rest = ref.partition("/")
        ln, _, path = rest.partition(".")
        got = ln_cf(f"{ld}/{ln}") if fc == "CF" else None
        if got is not None:
            value, spec = got
            loc = locate(spec, tuple(path.split(".")))
            if loc is None:
                raise LookupError(f"{ref}[CF] not in the model")
            v = element(value, loc[0])
            if not v:
                raise LookupError(f"{ref}[CF] not in the value")
            return scalar(v)
        v = conn.read(ref, fc)
        try:
            return scalar(v)
        finally:
            L.MmsValue_delete(v)

    def close() -> None:
        for got in cache.values():
            if got is not None:
                L.MmsValue_delete(got[0])
                L.MmsVariableSpecification_destroy(got[1])
        cache.clear()

    read.close = close  # type: ignore[attr-defined]
    return read
