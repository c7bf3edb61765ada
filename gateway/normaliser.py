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
from gateway.encoding import iso_ms
from gateway.northbound.message import ValueMessage
from gateway.pipeline import Reading

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Publication(ValueMessage):
    """One value to publish: the MQTT message itself (topic, payload, qos, retain, expiry; outbox ``kind``
    analog/discrete/accumulator/event and ``seq``), plus the point's ``key`` and whether it came from a
    protocol event (kept longest when a spool bound is hit)."""

    key: str = ""
    event: bool = False


@dataclass(slots=True)
class _Last:
    """A point's last published value, and its catalog entry: one dict lookup per reading, not two."""

    value: float | int | None
    quality: int
    timestamp: float
    address: str
    entry: CatalogEntry


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
        *,
        sink_many: Callable[[list[Publication]], object] | None = None,
        analog_expiry: int | None = None,
    ) -> None:
        """``sink`` gets each publication; ``sink_many``, when given, gets those of one batch (:meth:`many`) at once.
        ``analog_expiry``: MQTT 5 message expiry (s) of analog values."""
        self.catalog = catalog
        self.sink = sink
        self.sink_many = sink_many
        self.analog_qos = analog_qos
        self.retain_analog = retain_analog
        self.analog_expiry = analog_expiry or None
        self.seq = first_seq - 1
        self.last: dict[str, _Last] = {}
        self.stats = NormaliserStats()
        self._unknown_logged: set[str] = set()

    def __call__(self, r: Reading) -> None:
        self.stats.readings += 1
        entry = self.catalog.get(r.key)
        if entry is None:
            self._unknown(r.key)
            return
        prev = self.last.get(r.key)
        if prev is not None and not r.event and not _changed(entry, prev, r):
            self.stats.suppressed += 1
            return
        if prev is None:
            self.last[r.key] = _Last(r.value, r.quality, r.timestamp, r.address, entry)
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

    def many(self, readings: list[Reading]) -> None:
        """The readings of one poll (or block) in one pass: what :meth:`__call__` does for each, with the
        lookups hoisted out of the loop and one sink call for all of them (the hot path at site scale).

        Kept flat for speed (each step here is paid 10,000+ times a second): one dict lookup per reading
        (the last value holds its catalog entry), the change test of :func:`_changed` inlined, the ISO
        timestamp formatted once per distinct timestamp (a block shares one), the Publication built
        positionally (docs/performance.md has the figures)."""
        last, last_get = self.last, self.last.get
        stats = self.stats
        out: list[Publication] = []
        append = out.append
        seq = self.seq
        suppressed = 0
        aqos, aretain, aexpiry = self.analog_qos, self.retain_analog, self.analog_expiry
        sqos, sretain, sexpiry = _STATE
        t_at, t_text = None, ""
        try:
            for r in readings:
                key, value, quality, ts, address, event = r.key, r.value, r.quality, r.timestamp, r.address, r.event
                prev = last_get(key)
                if prev is None:
                    entry = self.catalog.get(key)
                    if entry is None:
                        self._unknown(key)
                        continue
                    last[key] = _Last(value, quality, ts, address, entry)
                else:
                    entry = prev.entry
                    if not event and prev.quality == quality:  # _changed, inlined
                        pv = prev.value
                        if pv is None or value is None:
                            if pv is value:
                                suppressed += 1
                                continue
                        elif entry.analog:
                            db = entry.deadband
                            if (not abs(float(value) - float(pv)) > db) if db > 0 else value == pv:  # NaN: as _changed
                                suppressed += 1
                                continue
                        elif value == pv:
                            suppressed += 1
                            continue
                    prev.value, prev.quality, prev.timestamp, prev.address = value, quality, ts, address
                seq += 1
                if ts != t_at:
                    t_at, t_text = ts, iso_ms(ts)
                payload = entry.payload_at(value, quality, t_text, seq, address)
                if entry.analog:  # fields in order: topic payload qos retain expiry born kind seq key event
                    append(Publication(entry.topic, payload, aqos, aretain, aexpiry, 0.0,
                                       "event" if event else entry.outbox_kind, seq, key, event))
                else:
                    append(Publication(entry.topic, payload, sqos, sretain, sexpiry, 0.0,
                                       "event" if event else entry.outbox_kind, seq, key, event))
        finally:  # counters stay true even if a payload failed half-way through a batch
            stats.readings += len(readings)
            stats.suppressed += suppressed
            stats.published += seq - self.seq
            self.seq = seq
            if out:
                if self.sink_many is not None:
                    self.sink_many(out)
                else:
                    for p in out:
                        self.sink(p)

    def _unknown(self, key: str) -> None:
        self.stats.unknown += 1
        if key not in self._unknown_logged:
            self._unknown_logged.add(key)
            log.error("reading for unknown point %r dropped (not in the catalog); counted in stats.unknown", key)

    def _publish(self, e: CatalogEntry, value, quality: int, ts: float, address: str, event: bool = False) -> None:
        self.seq += 1
        qos, retain, expiry = (self.analog_qos, self.retain_analog, self.analog_expiry) if e.analog else _STATE
        self.stats.published += 1
        self.sink(Publication(e.topic, e.payload(value, quality, ts, self.seq, address), qos, retain, expiry,
                              kind="event" if event else e.outbox_kind, seq=self.seq, key=e.key, event=event))


#: qos, retain, expiry of discretes and accumulators: state, delivered and kept
_STATE = (1, True, None)


def _changed(e: CatalogEntry, prev: _Last, r: Reading) -> bool:
    if prev.quality != r.quality:
        return True
    if prev.value is None or r.value is None:
        return prev.value is not r.value
    if e.analog:
        return abs(float(r.value) - float(prev.value)) > e.deadband if e.deadband > 0 else r.value != prev.value
    return r.value != prev.value
