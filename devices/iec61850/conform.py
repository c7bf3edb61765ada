"""What IEC 61850-7-4/7-3 (Ed. 2) demands of the LNs gridgate emulates: mandatory data objects,
their legal initial values, SI units (SIUnit + multiplier) and deadbands on measured values.

Plain tables and small pure functions; ``model.py`` turns them into the libiec61850 model and
``server.py`` serves the values. The mapping table in docs/iec61850-model.md mirrors these tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.protocols.iec61850.config import MmsPoint

#: mandatory DOs per LN class (7-4 Ed. 2, "M" rows), with their CDC; Beh is mandatory in every LN but LPHD
MANDATORY: dict[str, list[tuple[str, str]]] = {
    "LLN0": [("Mod", "ENC"), ("Beh", "ENS"), ("Health", "ENS"), ("NamPlt", "LPL")],
    "LPHD": [("PhyNam", "DPL"), ("PhyHealth", "ENS"), ("Proxy", "SPS")],
    "XCBR": [("Beh", "ENS"), ("Loc", "SPS"), ("OpCnt", "INS"), ("Pos", "DPC"), ("BlkOpn", "SPC"), ("BlkCls", "SPC")],
    "XSWI": [("Beh", "ENS"), ("Loc", "SPS"), ("OpCnt", "INS"), ("SwTyp", "ENS"), ("Pos", "DPC"), ("BlkOpn", "SPC"),
             ("BlkCls", "SPC")],
    "CSWI": [("Beh", "ENS"), ("Pos", "DPC")],
    "PTOC": [("Beh", "ENS"), ("Str", "ACD"), ("Op", "ACT")],
    "PTRC": [("Beh", "ENS")],
    "PIOC": [("Beh", "ENS"), ("Str", "ACD"), ("Op", "ACT")],
    "MMXU": [("Beh", "ENS")],
    "MMTR": [("Beh", "ENS")],
    "GGIO": [("Beh", "ENS")],
    "YLTC": [("Beh", "ENS")],
    "ATCC": [("Beh", "ENS")],
}

#: the LNs of a feeder-bay protection and control IED, present in every LD (mandatory DOs only,
#: plus what the points map); unmapped optional DOs are not served at all
BAY_LNS = ["LLN0", "LPHD1", "XCBR1", "CSWI1", "PTOC1"]

#: DA values the IED itself feeds (its own state, not the process): legal, GOOD, stamped at start.
#: key: (LN class, DO, DA path) → value
OWN_VALUES: dict[tuple[str, str, str], object] = {
    ("*", "Beh", "stVal"): 1,  # BehaviourModeKind on
    ("LLN0", "Mod", "stVal"): 1,
    ("LLN0", "Health", "stVal"): 1,  # HealthKind Ok
    ("LPHD", "PhyHealth", "stVal"): 1,
    ("LPHD", "Proxy", "stVal"): False,
    ("XCBR", "Loc", "stVal"): False,  # remote control allowed
    ("XSWI", "Loc", "stVal"): False,
    ("XCBR", "OpCnt", "stVal"): 0,
    ("XSWI", "OpCnt", "stVal"): 0,
    ("XSWI", "SwTyp", "stVal"): 2,  # SwitchFunctionKind disconnector
    ("XCBR", "BlkOpn", "stVal"): False,
    ("XCBR", "BlkCls", "stVal"): False,
    ("XSWI", "BlkOpn", "stVal"): False,
    ("XSWI", "BlkCls", "stVal"): False,
}

VENDOR = "gridgate"
SW_REV = "0.1.0"
LD_NS = "IEC 61850-7-4:2007B"

#: SIUnit enumeration (IEC 61850-7-3 Annex A / CIM UnitSymbol codes)
SI_UNIT = {"none": 1, "A": 5, "deg": 9, "degC": 23, "V": 29, "Hz": 33, "W": 38, "Pa": 39, "VA": 61, "VAr": 63, "cosPhi": 65,
           "VAh": 71, "Wh": 72, "VArh": 73}
SI_UNIT_NAME = {v: k for k, v in SI_UNIT.items()}
CIM_MULTIPLIER_EXP = {"none": 0, "k": 3, "M": 6}
MULTIPLIER_NAME = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G"}

#: default rangeC (min, max) in SI units per measured DO, the base of db/zeroDb (0.001 % of the range)
DEFAULT_RANGE_SI: dict[str, tuple[float, float]] = {
    "Hz": (45.0, 65.0), "PhV": (0.0, 40e3), "PPV": (0.0, 70e3), "A": (0.0, 2e3), "TotW": (-40e6, 40e6),
    "TotVAr": (-40e6, 40e6), "TotVA": (0.0, 40e6), "TotPF": (-1.0, 1.0), "W": (-15e6, 15e6), "VAr": (-15e6, 15e6),
    "VA": (0.0, 15e6), "PF": (-1.0, 1.0),
}
DEFAULT_DB = 100  # 0.1 % of the range unless the point sets db (or a wider deadband)


class UnitError(ValueError):
    """A point whose scale cannot be stated as an IEC 61850 unit multiplier."""


@dataclass(frozen=True)
class Analogue:
    """How one measured value is described and filtered: SI unit, 10^multiplier, rangeC and deadbands."""

    si_unit: int
    multiplier: int
    range_min: float
    range_max: float
    db: int  # 0.001 % of (max - min)
    zero_db: int

    def abs_db(self) -> float:
        return self.db * 1e-5 * (self.range_max - self.range_min)

    def abs_zero_db(self) -> float:
        return self.zero_db * 1e-5 * (self.range_max - self.range_min)


def analogue(p: MmsPoint, do: str) -> Analogue:
    """Units and deadbands of an MV/CMV point: the served value × 10^multiplier is the SI value.

    The multiplier is what the point's scale and CIM multiplier already imply (engineering =
    raw × scale, in unit × 10^CIM multiplier), so the values path stays as it is."""
    if p.offset:
        raise UnitError(f"offset {p.offset} cannot be stated in IEC 61850 units (SIUnit × 10^multiplier); use offset 0")
    scale_exp = math.log10(abs(p.scale)) if p.scale else float("nan")
    if p.scale <= 0 or abs(scale_exp - round(scale_exp)) > 1e-9:
        raise UnitError(
            f"scale {p.scale} is not a power of ten, so units.multiplier cannot state it; use 0.001, 1, 1000, ..."
        )
    m = int(round(scale_exp)) + CIM_MULTIPLIER_EXP[p.measurement.multiplier]
    lo_si, hi_si = DEFAULT_RANGE_SI.get(do, (-1e6, 1e6))
    lo, hi = (p.range[0], p.range[1]) if p.range else (lo_si / 10**m, hi_si / 10**m)
    span = hi - lo
    if p.db is not None:
        db = p.db
    else:  # at least the IED default; wider when the point's own deadband is wider
        db = max(DEFAULT_DB, round(p.deadband / p.scale / span * 1e5) if p.deadband > 0 else 0)
    return Analogue(SI_UNIT[p.measurement.unit or "none"], m, lo, hi, db, p.zero_db)


def counter_units(p: MmsPoint) -> tuple[int, int, float]:
    """(SIUnit, multiplier, pulsQty) of a BCR: actVal × pulsQty × 10^multiplier is the SI energy."""
    m = CIM_MULTIPLIER_EXP[p.measurement.multiplier]
    return SI_UNIT[p.measurement.unit or "none"], m, float(p.scale)


def own_value(ln_class: str, do: str, da: str) -> object | None:
    v = OWN_VALUES.get((ln_class, do, da))
    return v if v is not None else OWN_VALUES.get(("*", do, da))
