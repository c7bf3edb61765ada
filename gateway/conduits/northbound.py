"""Give the conduits the northbound publisher's API so :class:`gateway.app.Gateway` can use
them in place of MQTT (``GatewayOptions.northbound``): the data-diode sender and the
air-gap courier writer.

Both are one-way: there is no broker to acknowledge anything, so ``connected`` means
"the conduit is open", birth (online status + catalog) is sent once at start, and the
final offline status is sent on stop. Every message refused is counted in
``stats.dropped`` by reason, never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.conduits.courier import CourierWriter
from gateway.conduits.diode import DiodeSender
from gateway.conduits.records import Record
from gateway.northbound.message import Message, PublisherStats

log = logging.getLogger(__name__)


class ConduitPublisher:
    """Common shape: ``publish`` turns a message into a :class:`Record` and hands it to ``_put``."""

    def __init__(self, birth: Callable[[], None] | None = None) -> None:
        self._stats = PublisherStats()
        self._birth = birth
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open

    @property
    def stats(self) -> PublisherStats:
        self._stats.connected = self._open
        return self._stats

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, *, kind: str | None = None,
                seq: int | None = None, expiry: int | None = None) -> bool:
        """Hand one message to the conduit; False (counted in ``stats.dropped``) if it refused it."""
        if not self._open:
            self._stats.dropped["conduit_closed"] += 1
            return False
        reason = self._put(Record(topic=topic, payload=payload, qos=min(qos, 2), retain=retain))
        if reason:
            self._stats.dropped[reason] += 1
            return False
        self._stats.published += 1
        return True

    def _put(self, rec: Record) -> str | None:
        """Carry ``rec``; return a drop reason, or None when it was taken."""
        raise NotImplementedError

    async def start(self) -> None:
        await self._open_conduit()
        self._open = True
        if self._birth is not None:
            self._birth()

    async def stop(self, final: Message | None = None, timeout: float = 5.0) -> None:
        if final is not None and self._open:
            self.publish(final.topic, final.payload, final.qos, final.retain)
        self._open = False
        await asyncio.wait_for(self._close_conduit(), timeout)

    async def _open_conduit(self) -> None:
        pass

    async def _close_conduit(self) -> None:
        pass


class DiodeNorthbound(ConduitPublisher):
    """Publish over the UDP data diode (the receiver in the control zone republishes to MQTT)."""

    def __init__(self, host: str, port: int, copies: int = 2, parity_group: int = 4, heartbeat_s: float = 1.0,
                 birth: Callable[[], None] | None = None, key: bytes | None = None) -> None:
        super().__init__(birth)
        self.sender = DiodeSender(host, port, copies=copies, parity_group=parity_group, heartbeat_s=heartbeat_s, key=key)

    def _put(self, rec: Record) -> str | None:
        errors = self.sender.stats.send_errors
        if self.sender.send(rec) is None:
            return "oversize"
        if self.sender.stats.send_errors > errors:
            return "send_error"
        return None

    async def _open_conduit(self) -> None:
        await self.sender.start()

    async def _close_conduit(self) -> None:
        await self.sender.close()


class CourierNorthbound(ConduitPublisher):
    """Write the northbound stream as signed bundles into a transfer directory, one bundle
    every ``flush_s`` seconds or ``max_records`` records, whichever comes first."""

    def __init__(self, transfer_dir: str | Path, key: Ed25519PrivateKey, source: str, state: str | Path, flush_s: float = 2.0,
                 max_records: int = 1000, birth: Callable[[], None] | None = None) -> None:
        super().__init__(birth)
        self.writer = CourierWriter(transfer_dir, key, source, state, max_records=max_records)
        self.flush_s = flush_s
        self.bundles = 0
        self._task: asyncio.Task | None = None

    @property
    def stats(self) -> PublisherStats:
        st = super().stats
        st.queued = len(self.writer.pending)
        return st

    def _put(self, rec: Record) -> str | None:
        try:
            if self.writer.add(rec) is not None:
                self.bundles += 1
        except OSError as e:  # full or pulled USB stick: the records stay pending and are retried
            self._stats.last_error = str(e)
            log.error("courier: cannot write bundle to %s: %s (kept pending, retried)", self.writer.dir, e)
        return None

    def _flush(self) -> None:
        try:
            if self.writer.flush() is not None:
                self.bundles += 1
        except OSError as e:
            self._stats.last_error = str(e)
            log.error("courier: cannot write bundle to %s: %s (kept pending, retried)", self.writer.dir, e)

    async def _open_conduit(self) -> None:
        self.writer.dir.mkdir(parents=True, exist_ok=True)

        async def every() -> None:
            while True:
                await asyncio.sleep(self.flush_s)
                self._flush()

        self._task = asyncio.create_task(every(), name="courier-flush")

    async def _close_conduit(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._flush()
        if self.writer.pending:
            self._stats.dropped["courier_unwritten"] += len(self.writer.pending)
            log.error("courier: %d records could not be written to %s at shutdown", len(self.writer.pending), self.writer.dir)
