"""DNP3 point flags ↔ gridgate quality (Q bits), one mapping for master and outstation.

Bits 5-6 mean different things per point kind (chatter filter on binaries, over-range and
reference error on analogs), so every function takes the kind.
"""

from __future__ import annotations

from gateway.protocols.dnp3.objects import (
    CHATTER_FILTER,
    COMM_LOST,
    LOCAL_FORCED,
    ONLINE,
    OVER_RANGE,
    REFERENCE_ERR,
    REMOTE_FORCED,
    RESTART,
)
from gateway.site.quality import Q

_BINARY = ("binary", "double_binary", "binary_output")
_ANALOG = ("analog", "analog_output")


def to_quality(kind: str, flags: int) -> int:
    """DNP3 flags → Q bits (issue 4 mapping: ONLINE off → INVALID; COMM_LOST → INVALID+failure+oldData;
    forced → SUBSTITUTED; OVER_RANGE → overFlow+outOfRange; REFERENCE_ERR → badReference;
    CHATTER_FILTER → oscillatory; RESTART → questionable)."""
    q = 0
    if flags & COMM_LOST:
        q |= Q.INVALID | Q.FAILURE | Q.OLD_DATA
    if not flags & ONLINE:
        q |= Q.INVALID
    if flags & (REMOTE_FORCED | LOCAL_FORCED):
        q |= Q.SUBSTITUTED
    if kind in _BINARY and flags & CHATTER_FILTER:
        q |= Q.OSCILLATORY
    if kind in _ANALOG:
        if flags & OVER_RANGE:
            q |= Q.OVERFLOW | Q.OUT_OF_RANGE
        if flags & REFERENCE_ERR:
            q |= Q.BAD_REFERENCE
    if flags & RESTART and not q & Q.INVALID:
        q |= Q.QUESTIONABLE
    return int(q)


def from_quality(kind: str, q: int) -> int:
    """Q bits → DNP3 flags, the inverse of :func:`to_quality` where one exists."""
    validity = q & 0x3
    flags = 0
    if q & Q.FAILURE:
        flags |= COMM_LOST
    if validity != 0b10:
        flags |= ONLINE
    if validity == 0b11 and not q & (Q.OVERFLOW | Q.OUT_OF_RANGE | Q.BAD_REFERENCE | Q.OSCILLATORY):
        flags |= RESTART
    if q & Q.SUBSTITUTED:
        flags |= LOCAL_FORCED
    if kind in _BINARY and q & Q.OSCILLATORY:
        flags |= CHATTER_FILTER
    if kind in _ANALOG:
        if q & (Q.OVERFLOW | Q.OUT_OF_RANGE):
            flags |= OVER_RANGE
        if q & Q.BAD_REFERENCE:
            flags |= REFERENCE_ERR
    return flags
