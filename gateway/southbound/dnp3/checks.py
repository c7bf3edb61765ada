"""What the gateway's DNP3 master must not believe, and what the control room sees instead.

- A header that claims more objects than the fragment carries (``g30v1 0..999`` with one
  object's octets): the framing is untrustworthy, so none of its objects is published;
  the configured points it claimed keep their last value, re-published QUESTIONABLE|INCONSISTENT.
- IIN2.1 (object unknown) / IIN2.2 (parameter error) on a poll response: the outstation did not
  return everything asked for; while they persist the device's values are QUESTIONABLE|INCONSISTENT
  (IIN2.0 on a READ likewise; on (dis)enable-unsolicited it only means "not supported").
"""

from __future__ import annotations

from gateway.protocols.dnp3 import objects as o
from gateway.protocols.dnp3.config import Dnp3Point
from gateway.protocols.dnp3.points import PointTable

#: IIN2 bits that mean a READ was not fully answered
READ_ERRORS = o.IIN_NO_FUNC_CODE | o.IIN_OBJECT_UNKNOWN | o.IIN_PARAMETER_ERROR


def split_short(headers: list[o.Header]) -> tuple[list[o.Header], list[o.Header]]:
    """(headers to publish, measurement headers with fewer objects than their range or count claims)."""
    good: list[o.Header] = []
    short: list[o.Header] = []
    for h in headers:
        if h.group in o.KIND_OF_GROUP and (h.group, h.var) in _DECODED and len(h.objects) < h.count:
            short.append(h)
        else:
            good.append(h)
    return good, short


#: object types whose values are decoded (so a shortfall is visible)
_DECODED = set(o.LAYOUT) | set(o.PACKED_BITS)


def claimed_points(table: PointTable, h: o.Header) -> list[Dnp3Point]:
    """The configured points a short header claimed (its index range; every point of its kind for a count)."""
    kind = o.KIND_OF_GROUP[h.group]
    pts = [p for p in table.by_addr.values() if p.group == kind]
    if h.qualifier in (0x00, 0x01):
        return [p for p in pts if h.start <= p.index <= h.stop]
    return pts


def read_errors(iin: int) -> int:
    return iin & READ_ERRORS
