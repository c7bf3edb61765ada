"""The one contract of the gateway's northbound sinks: the MQTT publisher (gateway/northbound/mqtt.py),
the data-diode sender and the air-gap courier writer (gateway/conduits/northbound.py).

The app hands every value to ``publish`` and never learns which sink it has; a sink that must refuse
a message returns False and counts it in ``stats.dropped`` by reason (never silently).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gateway.northbound.message import Message, PublisherStats


@runtime_checkable
class Sink(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def stats(self) -> PublisherStats: ...

    async def start(self) -> None: ...

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, *, kind: str | None = None,
                seq: int | None = None, expiry: int | None = None) -> bool:
        """Take one message (queued, spooled or sent); False if refused, counted in ``stats.dropped``."""

    async def stop(self, final: Message | None = None, timeout: float = 5.0) -> None:
        """Flush what can be flushed, send ``final`` (the offline status) where the sink can, close."""


__all__ = ["Sink"]
