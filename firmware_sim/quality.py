"""Quality bits of simulated points, in the layout of gateway/quality.py (libiec61850 uint16).

Copied, not imported: the firmware must not depend on the gateway. Keep in step with
gateway.quality.Q (tests/firmware_sim checks the values agree).
"""

from __future__ import annotations

GOOD = 0
INVALID = 0x0002
QUESTIONABLE = 0x0003
OVERFLOW = 0x0004
OUT_OF_RANGE = 0x0008
OSCILLATORY = 0x0020
FAILURE = 0x0040
OLD_DATA = 0x0080
INACCURATE = 0x0200
SUBSTITUTED = 0x0400
TEST = 0x0800
OPERATOR_BLOCKED = 0x1000
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
