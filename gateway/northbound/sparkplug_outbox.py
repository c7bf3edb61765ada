"""Sparkplug values wait here as readings, and become DDATA only when they are sent.

A Sparkplug DDATA carries the session's ``seq`` (and must come after that session's births),
so a message encoded while the broker or the primary host was away would be wrong when it
finally leaves. This outbox (the publisher's ``Outbox`` protocol) therefore keeps the reading
itself — device, metric, value, quality bits, original timestamp, whether it was live — and
``take()`` encodes it with the node's current ``seq``. A reading that was not live when it came
(no session, no births yet, host offline) or that belongs to an earlier session is sent with
``is_historical`` and its original timestamp, so a host does not take it as live. Nothing is
handed out while ``ready()`` is false (before the session's births, or holding for the host).

The readings wait in memory (bounded, refusals counted by the publisher) or, when the site has a
spool, in a spool file of their own (``<spool>.sparkplug.db``): then they survive a gateway restart
too and go out as historical after the next session's births.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from gateway.northbound.message import Message
from gateway.northbound.outbox import MemoryOutbox, Outbox

#: (device, metric, value, Q bits, epoch s, historical) → the DDATA to send
Encode = Callable[[str, str, object, int, float, bool], Message]


def reading(device: str, metric: str, value: object, flags: int, ts: float, live: bool, session: int) -> bytes:
    """The queued form of one reading (the publisher only carries bytes)."""
    return json.dumps([device, metric, value, flags, ts, live, session], separators=(",", ":")).encode()


class SparkplugOutbox:
    flush: Callable[[], None]  # present only over a spool: the publisher then commits and keeps it at stop
    close: Callable[[], None]

    def __init__(self, size: int, encode: Encode, ready: Callable[[], bool], session: Callable[[], int],
                 inner: Outbox | None = None) -> None:
        self._inner: Outbox = inner if inner is not None else MemoryOutbox(size)
        self.durable = hasattr(self._inner, "flush")
        if self.durable:  # the publisher looks for these to treat an outbox as a spool
            spool: Any = self._inner
            self.flush, self.close = spool.flush, spool.close
            self.max_delay, self.dropped = spool.max_delay, spool.dropped
        self._encode = encode
        self._ready = ready
        self._session = session
        self.historical = 0  # readings sent flagged is_historical

    def put(self, msg: Message, kind: str = "analog", seq: int | None = None) -> bool:
        return self._inner.put(msg, kind, seq)

    def take(self) -> tuple[int, Message] | None:
        if not self._ready():
            return None
        item = self._inner.take()
        if item is None:
            return None
        ref, msg = item
        device, metric, value, flags, ts, live, session = json.loads(msg.payload)
        historical = not live or session != self._session()
        self.historical += historical
        return ref, self._encode(device, metric, value, flags, ts, historical)

    def done(self, ref: int) -> None:
        self._inner.done(ref)

    def rewind(self) -> int:
        return self._inner.rewind()

    def __len__(self) -> int:
        """Held readings are not the publisher's to wait for (a stop while the host is away must not hang)."""
        return len(self._inner) if self._ready() else 0

    def backlog(self) -> int:
        return len(self._inner)
