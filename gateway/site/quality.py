"""Quality vocabulary of the gateway (CIM/IEC 61850 names, JSON form) over the one bit layout.

The bits themselves are defined once, in firmware_sim.quality (which depends on nothing of ours). The bit layout is libiec61850's uint16 ``Quality`` (IEC 61850-7-2 quality, LSB first),
so IEC 61850 quality passes through unchanged and DNP3/Modbus/firmware states map onto
one vocabulary. Two gridgate extensions use the bits 61850 leaves free: DEFAULTED
(CIM Source.DEFAULTED) and SUSPECT (CIM Quality61850.suspect).
"""

from __future__ import annotations

from typing import Any

from firmware_sim.quality import VALIDITY_MASK, Q

__all__ = ["Q", "VALIDITY_MASK", "COMMS_LOST"]

#: what a driver sets on every point of a device it can no longer reach
COMMS_LOST = Q.INVALID | Q.OLD_DATA | Q.FAILURE

_DETAIL = (
    (Q.OVERFLOW, "overFlow"),
    (Q.OUT_OF_RANGE, "outOfRange"),
    (Q.BAD_REFERENCE, "badReference"),
    (Q.OSCILLATORY, "oscillatory"),
    (Q.FAILURE, "failure"),
    (Q.OLD_DATA, "oldData"),
    (Q.INCONSISTENT, "inconsistent"),
    (Q.INACCURATE, "inaccurate"),
    (Q.TEST, "test"),
    (Q.OPERATOR_BLOCKED, "operatorBlocked"),
    (Q.SUSPECT, "suspect"),
)


def validity(flags: int) -> str:
    v = flags & VALIDITY_MASK
    if v == 0:
        return "GOOD"
    if v == 0b10:
        return "INVALID"
    return "QUESTIONABLE"  # 0b11, and the reserved 0b01 read conservatively


def source(flags: int) -> str:
    if flags & Q.SUBSTITUTED:
        return "SUBSTITUTED"
    if flags & Q.DEFAULTED:
        return "DEFAULTED"
    return "PROCESS"


def to_cim(flags: int) -> dict[str, Any]:
    """The payload's ``quality`` object: validity, source, and only the detail flags that are set."""
    out: dict[str, Any] = {"validity": validity(flags), "source": source(flags)}
    for bit, name in _DETAIL:
        if flags & bit:
            out[name] = True
    return out


def from_cim(q: dict[str, Any]) -> int:
    """Inverse of :func:`to_cim` (used by subscribers, tests and the courier)."""
    flags = {"GOOD": 0, "INVALID": int(Q.INVALID), "QUESTIONABLE": int(Q.QUESTIONABLE)}[q["validity"]]
    src = q.get("source", "PROCESS")
    if src == "SUBSTITUTED":
        flags |= Q.SUBSTITUTED
    elif src == "DEFAULTED":
        flags |= Q.DEFAULTED
    for bit, name in _DETAIL:
        if q.get(name):
            flags |= bit
    return int(flags)


def with_validity(flags: int, v: Q) -> int:
    """Replace the two validity bits, keep the detail bits."""
    return (flags & ~VALIDITY_MASK) | (int(v) & VALIDITY_MASK)
