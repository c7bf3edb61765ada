"""The one quality bit layout of gridgate (libiec61850's uint16 ``Quality``, IEC 61850-7-2, LSB first).

Defined here because firmware_sim depends on nothing of ours; the gateway (gateway.site.quality),
the drivers and the emulated devices all use these bits. Two gridgate extensions use the bits
61850 leaves free: DEFAULTED (CIM Source.DEFAULTED) and SUSPECT (CIM Quality61850.suspect).
"""

from enum import IntFlag


class Q(IntFlag):
    GOOD = 0
    INVALID = 0x0002  # validity bits 0..1 == 0b10
    QUESTIONABLE = 0x0003  # validity bits 0..1 == 0b11
    OVERFLOW = 0x0004
    OUT_OF_RANGE = 0x0008
    BAD_REFERENCE = 0x0010
    OSCILLATORY = 0x0020
    FAILURE = 0x0040
    OLD_DATA = 0x0080
    INCONSISTENT = 0x0100
    INACCURATE = 0x0200
    SUBSTITUTED = 0x0400
    TEST = 0x0800
    OPERATOR_BLOCKED = 0x1000
    DERIVED = 0x2000
    DEFAULTED = 0x4000
    SUSPECT = 0x8000



#: plain ints for the sampling loop (IntFlag arithmetic is slow in the hot path)
GOOD = int(Q.GOOD)
INVALID = int(Q.INVALID)
QUESTIONABLE = int(Q.QUESTIONABLE)
OVERFLOW = int(Q.OVERFLOW)
OUT_OF_RANGE = int(Q.OUT_OF_RANGE)
OSCILLATORY = int(Q.OSCILLATORY)
FAILURE = int(Q.FAILURE)
OLD_DATA = int(Q.OLD_DATA)
INACCURATE = int(Q.INACCURATE)
SUBSTITUTED = int(Q.SUBSTITUTED)
TEST = int(Q.TEST)
OPERATOR_BLOCKED = int(Q.OPERATOR_BLOCKED)
VALIDITY_MASK = 0x0003

#: QualityOverride flag names → bits
FLAG_BITS = {
    "substituted": SUBSTITUTED,
    "test": TEST,
    "operatorBlocked": OPERATOR_BLOCKED,
    "oldData": OLD_DATA,
    "inaccurate": INACCURATE,
}


def set_validity(q: int, v: int) -> int:
    """Raise validity to ``v``; INVALID wins over QUESTIONABLE (their bits overlap)."""
    if v == INVALID:
        return (q & ~VALIDITY_MASK) | INVALID
    if q & VALIDITY_MASK != INVALID:
        return q | QUESTIONABLE
    return q
