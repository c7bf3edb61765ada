"""Downgrade a good reading when the device says (or shows) its data cannot be trusted.

Shared by the DNP3 master (IIN1.6 DEVICE_TROUBLE) and the MMS client (reports stopped
while the association lives): validity GOOD becomes QUESTIONABLE, INVALID stays INVALID
(QUESTIONABLE's bit pattern would otherwise turn INVALID into QUESTIONABLE), and the
detail flag naming the reason is added either way.
"""

from __future__ import annotations

import dataclasses

from gateway.pipeline import Reading
from gateway.site.quality import VALIDITY_MASK, Q


def degrade(quality: int, detail: int) -> int:
    if quality & VALIDITY_MASK == 0:
        quality |= Q.QUESTIONABLE
    return int(quality | detail)


def degraded(r: Reading, detail: int, at: float | None = None) -> Reading:
    """``r`` with its quality downgraded; ``at``: re-publishing an old value now (not an event)."""
    if at is None:
        return dataclasses.replace(r, quality=degrade(r.quality, detail))
    return dataclasses.replace(r, quality=degrade(r.quality, detail), timestamp=at, event=False)
