"""Cached JSON fragments for the per-value hot path (CIM payloads).

Profiling at 10,000 points/s showed half the gateway's CPU rebuilding, for every value,
things that only depend on a small integer or on the current second: the quality object
(enum flag operations + ``json.dumps``), and the ISO timestamp (``strftime``). These
helpers produce exactly the bytes the reference functions (:func:`gateway.quality.to_cim`
+ ``json.dumps``, :func:`gateway.cim.iso_ms`) produce, from caches.
"""

from __future__ import annotations

import json
import time

from gateway.site import quality as qmod

_QUALITY: dict[int, str] = {}
#: the cache itself, for hot loops that look up before calling :func:`quality_json` (never write to it)
QUALITY_TEXT = _QUALITY


def quality_json(flags: int) -> str:
    """``json.dumps(to_cim(flags), separators=(",", ":"))``, cached by the flag integer (at most 65,536)."""
    s = _QUALITY.get(flags)
    if s is None:
        s = json.dumps(qmod.to_cim(flags), separators=(",", ":"))
        if 0 <= flags <= 0xFFFF:  # the 16 quality bits; anything else is not cached (never seen in practice)
            _QUALITY[flags] = s
    return s


class _IsoSecond:
    """``YYYY-MM-DDTHH:MM:SS.`` of the last whole second asked for (values of one poll share it)."""

    __slots__ = ("sec", "text", "t", "ms")

    def __init__(self) -> None:
        self.sec = -1
        self.text = ""
        self.t = -1.0  # the last timestamp asked for and its whole text: the readings of one block share it
        self.ms = ""


_last = _IsoSecond()


def iso_ms(t: float) -> str:
    """Same text as ``datetime.fromtimestamp(t, utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"``.

    ``datetime`` rounds the fraction to the microsecond half-to-even (a fraction that rounds
    up to 1,000,000 µs moves to the next second), then the milliseconds are truncated;
    this does the same, and formats the date part once per second.
    """
    c = _last
    if t == c.t:
        return c.ms
    if t < 0 or t != t or t >= 253402300800.0:  # before 1970, NaN, or past year 9999: the reference path
        return _reference(t)
    sec = int(t)
    us = round((t - sec) * 1e6)
    if us >= 1000000:
        sec += 1
        us -= 1000000
    if sec != c.sec:
        c.text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        c.sec = sec
    c.ms = text = f"{c.text}{us // 1000:03d}Z"
    c.t = t
    return text


def epoch_ms(t: float) -> int:
    """Epoch milliseconds of ``t`` by the same rule as :func:`iso_ms`: round to the µs, then truncate to the ms.

    The one timestamp rule of the gateway: the CIM ``timeStamp`` text and the Sparkplug metric
    timestamp of a reading always name the same millisecond (one rounding and one truncating
    path used to differ by 1 ms in half the readings).
    """
    sec = int(t) if t >= 0 else int(t) - 1
    return sec * 1000 + round((t - sec) * 1e6) // 1000


def _reference(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def provenance_json(device: str, protocol: str, address: str) -> str:
    """The payload's ``provenance`` object (callers cache it per point and address)."""
    return json.dumps({"device": device, "protocol": protocol, "address": address}, separators=(",", ":"))
