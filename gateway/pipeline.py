"""The gateway's pipeline contract: sources emit Readings, the normaliser turns them into
CIM values, sinks publish them (the Telegraf/Vector source → transform → sink split).

Every southbound driver speaks only this: it never knows about MQTT or CIM payloads.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Callable

from gateway.site.quality import COMMS_LOST, Q, with_validity

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Reading:
    """One value of one point as a driver got it.

    ``key`` is ``"{device}/{point}"`` (config names). ``value`` is already in engineering
    units (scale/offset applied, value_map applied for discretes). ``timestamp`` is the
    source time in seconds since the epoch (UTC) — the device's own time when the protocol
    carries one (DNP3 event time, IEC 61850 ``t``), else the gateway's receive time.
    """

    key: str
    value: float | int | bool | None
    quality: int = 0  # gateway.site.quality.Q bits
    timestamp: float = 0.0
    address: str = ""  # protocol address, for provenance, e.g. "holding:100" or "analog:3"
    event: bool = False  # came from a protocol event (SOE), never suppressed by deadband


Emit = Callable[[Reading], None]


class Emitter:
    """An ``Emit`` with a batch form: ``emit(r)`` for one reading, ``emit.many(readings)`` for those of one
    poll or block, which pass the normaliser and the publisher in one call each (site scale: ~10,000 a
    second). Drivers need not know: :func:`emit_all` uses ``many`` when the receiver has it."""

    __slots__ = ("one", "many")

    def __init__(self, one: Emit, many: Callable[[list[Reading]], None]) -> None:
        self.one = one
        self.many = many

    def __call__(self, r: Reading) -> None:
        self.one(r)


def emit_all(emit: Emit, readings: list[Reading]) -> None:
    """Hand over the readings of one poll or block: in one call when ``emit`` is an :class:`Emitter`."""
    if isinstance(emit, Emitter):
        emit.many(readings)
    else:
        for r in readings:
            emit(r)


@dataclass
class CommsState:
    """Per-device comms bookkeeping, published on the status topic."""

    connected: bool = False
    polls: int = 0
    failures: int = 0
    reconnects: int = 0
    last_error: str = ""
    last_ok: float = 0.0


@dataclass
class Backoff:
    """Exponential reconnect backoff with jitter, reset on success."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    _next: float = field(default=0.0, init=False)

    def next(self) -> float:
        self._next = self.initial if self._next == 0 else min(self.maximum, self._next * self.factor)
        return self._next * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = 0.0


def mark_comms_lost(keys: list[str], last: dict[str, Reading], emit: Emit, now: float) -> None:
    """Re-emit every point of a device with its last value and INVALID|OLD_DATA|FAILURE.

    The control room must see a device drop out; the value stays the last one known,
    the timestamp stays the source time of that value.
    """
    for k in keys:
        prev = last.get(k)
        if prev is None:
            emit(Reading(k, None, int(COMMS_LOST), now))
        else:
            lost = with_validity(prev.quality | int(COMMS_LOST), Q.INVALID)  # QUESTIONABLE | INVALID bits would read QUESTIONABLE
            if lost != prev.quality:
                emit(Reading(k, prev.value, lost, prev.timestamp, prev.address))


async def sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


__all__ = ["Reading", "Emit", "Emitter", "emit_all", "CommsState", "Backoff", "mark_comms_lost", "Q"]
