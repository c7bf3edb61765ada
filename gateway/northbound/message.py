"""What the northbound publisher carries: messages and its counters (TLS options: gateway.site.options).

Kept free of any MQTT library so the app, the spool and the tests share one vocabulary.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: a value's outbox kind, in the order a spool bound drops them (analog first, events last); the
#: index is the kind's code in the spool's records
KINDS: tuple[str, ...] = ("analog", "accumulator", "discrete", "event")
KIND_CODE: dict[str, int] = {k: i for i, k in enumerate(KINDS)}


@dataclass(slots=True)
class Message:
    """One MQTT application message. ``expiry`` is the MQTT 5 message expiry (s), ignored on 3.1.1.
    ``born``: wall-clock time the value's reading reached the publisher (0 for state messages); the
    publish latency histogram and the oldest queued age are measured from it."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    expiry: int | None = None
    born: float = 0.0


@dataclass(slots=True)
class ValueMessage(Message):
    """A measurement value: ``kind`` (one of :data:`KINDS`) decides what a spool bound drops
    first, ``seq`` is its per-gateway sequence number (a spool sets it when None). What the normaliser hands the publisher as is
    (:meth:`MqttPublisher.publish_many`): no second object per value."""

    kind: str = "analog"
    seq: int | None = None


@dataclass
class PublisherStats:
    """Counters published on the status topic. ``dropped`` is keyed by reason, never silent."""

    published: int = 0  # written to the socket (QoS 0) or sent (QoS 1)
    acked: int = 0  # QoS 1 PUBACKs received
    resent: int = 0  # QoS 1 messages re-sent after a connection loss (possible duplicates)
    reconnects: int = 0
    connect_failures: int = 0
    dropped: Counter = field(default_factory=Counter)
    queued: int = 0
    inflight: int = 0
    connected: bool = False
    last_error: str = ""

    def as_dict(self) -> dict:
        return {
            "published": self.published,
            "acked": self.acked,
            "resent": self.resent,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "dropped": dict(self.dropped),
            "queued": self.queued,
            "inflight": self.inflight,
            "connected": self.connected,
            "last_error": self.last_error,
        }
