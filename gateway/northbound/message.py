"""What the northbound publisher carries: messages, TLS options and its counters.

Kept free of any MQTT library so the app, the spool and the tests share one vocabulary.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


@dataclass(slots=True)
class Message:
    """One MQTT application message. ``expiry`` is the MQTT 5 message expiry (s), ignored on 3.1.1."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    expiry: int | None = None


class TlsOptions(BaseModel):
    """TLS to the broker: server authentication by ``ca_file``, mutual TLS with ``cert_file``/``key_file``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = Field(None, description="CA bundle that signed the broker certificate; None = system store")
    cert_file: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(None, description="client private key (PEM) for mutual TLS")
    server_hostname: str | None = Field(None, description="name to verify the broker certificate against (default: the URL's host)")


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
