"""Readings → CIM values: report-by-exception, integrity republish, per-gateway ``seq``.

A value is published when it is new, when an analog moved beyond its deadband since the
last *published* value, when a discrete/accumulator changed at all, when its quality
changed, when it came from a protocol event, or when the integrity interval says every
point must be republished. Everything else is counted as suppressed, not lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from gateway.cim import CatalogEntry
from gateway.pipeline import Reading

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Publication:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str  # Analog | Discrete | Accumulator
    key: str
    seq: int
    event: bool = False  # from a protocol event (kept longest when a spool bound is hit)


@dataclass(slots=True)
class _Last:
    value: float | int | None
    quality: int
    timestamp: float
    address: str


@dataclass
class NormaliserStats:
    readings: int = 0
    published: int = 0
    suppressed: int = 0  # inside deadband / unchanged (not lost: the last value stands)
    unknown: int = 0  # readings for keys not in the catalog (a driver bug) — logged once each
    integrity: int = 0


class Normaliser:
    def __init__(
        self,
        catalog: dict[str, CatalogEntry],
        sink: Callable[[Publication], object],
        analog_qos: int = 0,
        retain_analog: bool = True,
        first_seq: int = 1,
    ) -> None:
        self.catalog = catalog
        self.sink = sink
        self.analog_qos = analog_qos
        self.retain_analog = retain_analog
        self.seq = first_seq - 1
        self.last: dict[str, _Last] = {}
        self.stats = NormaliserStats()
        self._unknown_logged: set[str] = set()

    def __call__(self, r: Reading) -> None:
        self.stats.readings += 1
        entry = self.catalog.get(r.key)
        if entry is None:
            self.stats.unknown += 1
            if r.key not in self._unknown_logged:
                self._unknown_logged.add(r.key)
                log.error("reading for unknown point %r dropped (not in the catalog); counted in stats.unknown", r.key)
            return
        prev = self.last.get(r.key)
        if prev is not None and not r.event and not _changed(entry, prev, r):
            self.stats.suppressed += 1
            return
        if prev is None:
            self.last[r.key] = _Last(r.value, r.quality, r.timestamp, r.address)
        else:  # in place: one object per point, not one per value
            prev.value, prev.quality, prev.timestamp, prev.address = r.value, r.quality, r.timestamp, r.address
        self._publish(entry, r.value, r.quality, r.timestamp, r.address, r.event)

    def republish_all(self) -> int:
        """Integrity: publish the last value of every point (keeps subscribers and retained state fresh)."""
        n = 0
        for key, last in self.last.items():
            self._publish(self.catalog[key], last.value, last.quality, last.timestamp, last.address)
            n += 1
        self.stats.integrity += n
        return n

    def _publish(self, e: CatalogEntry, value, quality: int, ts: float, address: str, event: bool = False) -> None:
        self.seq += 1
        analog = e.kind == "Analog"
        self.stats.published += 1
        self.sink(
            Publication(
                topic=e.topic,
                payload=e.payload(value, quality, ts, self.seq, address),
                qos=self.analog_qos if analog else 1,
                retain=self.retain_analog if analog else True,
                kind=e.kind,
                key=e.key,
                seq=self.seq,
                event=event,
            )
        )


def _changed(e: CatalogEntry, prev: _Last, r: Reading) -> bool:
    if prev.quality != r.quality:
        return True
    if prev.value is None or r.value is None:
        return prev.value is not r.value
    if e.kind == "Analog":
        return abs(float(r.value) - float(prev.value)) > e.deadband if e.deadband > 0 else r.value != prev.value
    return r.value != prev.value
