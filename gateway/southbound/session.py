"""The shape every southbound driver shares: connect, exchange data, lose the link, back off, reconnect.

A protocol driver subclasses :class:`DeviceSession` (event-driven protocols) or
:class:`PolledSession` (request/response polling) and supplies only the protocol parts:
``connect``, ``close`` and ``serve``/``poll``. Comms state, backoff, the INVALID marking of
every point when a device drops out, and last-value bookkeeping live here once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from gateway.pipeline import (
    Backoff,
    CommsState,
    Emit,
    Emitter,
    Reading,
    mark_comms_lost,
    sleep_until,
)

if TYPE_CHECKING:
    from gateway.site.model import DeviceBase

log = logging.getLogger(__name__)


class DriverError(Exception):
    """A protocol-level failure that ends the current connection (bad reply, wrong count, timeout)."""


class DeviceSession(ABC):
    protocol: str = "?"

    def __init__(self, device: DeviceBase, backoff: Backoff | None = None) -> None:
        self.cfg = device
        self.device = device.name
        self.keys = [f"{device.name}/{p.name}" for p in device.points]
        self.state = CommsState()
        self.backoff = backoff or Backoff(initial=min(0.5, device.poll_interval), maximum=30.0)
        self.last: dict[str, Reading] = {}

    @property
    def connected(self) -> bool:
        return self.state.connected

    @abstractmethod
    async def connect(self) -> None:
        """Open the association; raise OSError/TimeoutError/DriverError on failure."""

    @abstractmethod
    async def close(self) -> None:
        """Release the association; must not raise."""

    @abstractmethod
    async def serve(self, emit: Emit) -> None:
        """Exchange data until the link is lost (raise) or cancelled."""

    async def run(self, emit: Emit) -> None:
        last = self.last
        to_one = emit.one if isinstance(emit, Emitter) else emit  # one call layer less per reading
        to_many = emit.many if isinstance(emit, Emitter) else None

        def one(r: Reading) -> None:
            last[r.key] = r
            to_one(r)

        def many(readings: list[Reading]) -> None:
            for r in readings:
                last[r.key] = r
            if to_many is not None:
                to_many(readings)
            else:
                for r in readings:
                    to_one(r)

        tracked = Emitter(one, many)

        first = True
        while True:
            try:
                async with asyncio.timeout(self.cfg.timeout * 2):  # not wait_for: on 3.11 it can swallow a cancel
                    await self.connect()
                if not first:
                    self.state.reconnects += 1
                self.state.connected = True
                self.backoff.reset()
                log.info("%s: connected to %s device at %s:%s", self.device, self.protocol, self.cfg.host, self.cfg.port)
                await self.serve(tracked)
                raise DriverError("connection closed by the device")
            except asyncio.CancelledError:
                await self.close()
                raise
            except (OSError, TimeoutError, DriverError, EOFError) as e:
                if asyncio.current_task().cancelling():  # a library turned our cancel into its own error
                    await self.close()
                    raise asyncio.CancelledError from e
                self.state.failures += 1
                self.state.last_error = _describe(e)
                if self.state.connected or first:
                    log.warning("%s: comms lost (%s); points marked INVALID", self.device, self.state.last_error)
            finally:
                first = False
            self.state.connected = False
            await self.close()
            mark_comms_lost(self.keys, self.last, tracked, time.time())
            await asyncio.sleep(self.backoff.next())


class PolledSession(DeviceSession):
    """Polls on an absolute schedule (no drift), one ``poll`` per interval."""

    @abstractmethod
    async def poll(self, emit: Emit) -> None:
        """Read everything once and emit it; raise DriverError/TimeoutError/OSError on failure."""

    async def serve(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        interval = self.cfg.poll_interval
        deadline = loop.time()
        while True:
            async with asyncio.timeout(self.cfg.timeout):  # not wait_for: see run()
                await self.poll(emit)
            self.state.polls += 1
            self.state.last_ok = time.time()
            deadline += interval
            now = loop.time()
            if deadline < now:  # fell behind: skip the missed slots rather than burst
                deadline = now + interval - ((now - deadline) % interval)
            await sleep_until(loop, deadline)


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "no reply within the timeout"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
