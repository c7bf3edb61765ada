"""Decoded DNP3 objects → Readings (engineering value, Q quality, source time, provenance)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gateway.pipeline import Reading
from gateway.protocols.dnp3 import objects as o
from gateway.protocols.dnp3.flags import to_quality
from gateway.protocols.dnp3.points import PointTable, to_engineering

log = logging.getLogger(__name__)


@dataclass
class Unmapped:
    """Objects the device sent for addresses no config point names: counted, logged once per kind."""

    count: int = 0
    seen: set[str] = field(default_factory=set)


def to_readings(device: str, table: PointTable, headers: list[o.Header], now: float, unmapped: Unmapped) -> list[Reading]:
    out: list[Reading] = []
    cto: int | None = None
    for h in headers:
        if h.group == 51 and h.objects:
            cto = h.objects[0].time_ms
            continue
        kind = o.KIND_OF_GROUP.get(h.group)
        if kind is None:
            continue
        is_event = o.EVENT_GROUP[kind] == h.group
        relative = "r" in o.LAYOUT.get((h.group, h.var), "")
        for obj in h.objects:
            p = table.by_addr.get((kind, obj.index))
            if p is None:
                unmapped.count += 1
                if kind not in unmapped.seen:
                    unmapped.seen.add(kind)
                    log.warning("%s: %s index %d (and any further unconfigured %s index) is not in the config; "
                                "dropped and counted in status 'unmapped'", device, kind, obj.index, kind)
                continue
            t = obj.time_ms
            if relative:
                t = (cto + t) if (cto is not None and t is not None) else None
            ts = t / 1000.0 if t else now
            out.append(
                Reading(f"{device}/{p.name}", to_engineering(p, obj.value), to_quality(kind, obj.flags), ts,
                        f"{h.group}:{obj.index}", is_event)
            )
    return out
