"""Units from the IED's model: an analogue's engineering value is mag × 10^units.multiplier (× pulsQty
for counters), expressed in the point's CIM multiplier, instead of a hand-set ``scale``.

Read once per association (CF units of each analogue's data object). An IED whose model has no
units (old-style, or a user's model without them) keeps the point's ``scale``/``offset``. Shared by
the gateway's client (reading an IED over MMS) and the emulated IED (its own model in memory).
"""

from __future__ import annotations

import logging

from gateway.protocols.iec61850.config import MmsPoint

log = logging.getLogger(__name__)

CIM_EXP = {"none": 0, "k": 3, "M": 6}
SI_UNIT = {"A": 5, "deg": 9, "degC": 23, "V": 29, "Hz": 33, "W": 38, "Pa": 39, "VA": 61, "VAr": 63, "cosPhi": 65, "VAh": 71, "Wh": 72,
           "VArh": 73}


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
