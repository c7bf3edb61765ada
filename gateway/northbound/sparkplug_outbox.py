"""Sparkplug values wait here as readings, and become DDATA only when they are sent.

A Sparkplug DDATA carries the session's ``seq`` (and must come after that session's births),
so a message encoded while the broker or the primary host was away would be wrong when it
finally leaves. This outbox (the publisher's ``Outbox`` protocol) therefore keeps the reading
itself — device, metric, value, quality bits, original timestamp, whether it was live — and
``take()`` encodes it with the node's current ``seq``. A reading that was not live when it came
(no session, no births yet, host offline) or that belongs to an earlier session is sent with
``is_historical`` and its original timestamp, so a host does not take it as live. Nothing is
handed out while ``ready()`` is false (before the session's births, or holding for the host).

The readings wait in memory (bounded: ``add`` returns False when full) or, when the site has a
spool, in a spool file of their own (``<spool>.sparkplug.db``, as JSON): then they survive a
gateway restart too and go out as historical after the next session's births. The bridge adds
readings directly (``add``) and the publisher's ``on_append`` wakes its sender, as with a spool.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any, Callable

from gateway.northbound.message import Message, ValueMessage
from gateway.northbound.outbox import Outbox

#: (device, metric, value, Q bits, epoch s, historical) → the DDATA to send
Encode = Callable[[str, str, object, int, float, bool], Message]
#: device, metric, value, Q bits, epoch s, live when it came, session (bdSeq) it came in
Reading = tuple[str, str, object, int, float, bool, int]


def reading(device: str, metric: str, value: object, flags: int, ts: float, live: bool, session: int) -> bytes:
    """The spooled form of one reading (a spool stores bytes)."""
    return json.dumps([device, metric, value, flags, ts, live, session], separators=(",", ":")).encode()


class SparkplugOutbox:
    flush: Callable[[], None]  # present only over a spool: the publisher then commits and keeps it at stop
    close: Callable[[], None]

    def __init__(self, size: int, encode: Encode, ready: Callable[[], bool], session: Callable[[], int],
                 spool: Outbox | None = None) -> None:
        if size < 1:
            raise ValueError(f"queue_size must be >= 1, got {size}")
        self.size = size
        self._spool = spool
        self.durable = spool is not None
        if spool is not None:  # the publisher looks for these to treat an outbox as a spool
            s: Any = spool
            self.flush, self.close = s.flush, s.close
            self.max_delay, self.dropped = s.max_delay, s.dropped
        self._pending: deque[tuple[int, Reading, float]] = deque()  # (ref, reading, born: when it came)
        self._taken: dict[int, tuple[Reading, float]] = {}
        self._next = 0
        self._encode = encode
        self._ready = ready
        self._session = session
        self.on_append: Callable[[], None] | None = None  # set by the publisher: wakes its sender
        self.historical = 0  # readings sent flagged is_historical

    def add(self, r: Reading) -> bool:
        """Queue one reading; False when the memory bound is reached (a spool never refuses: it drops old ones)."""
        if self._spool is not None:
            self._spool.put(Message("", reading(*r)), "analog")
        elif len(self._pending) + len(self._taken) >= self.size:
            return False
        else:
            self._next += 1
            self._pending.append((self._next, r, time.time()))
        if self.on_append is not None:
            self.on_append()
        return True

    def put(self, msg: Message, kind: str = "analog", seq: int | None = None) -> bool:
        """The Outbox protocol (not used by the bridge, which adds readings): a JSON reading."""
        return self.add(tuple(json.loads(msg.payload)))  # type: ignore[arg-type]

    def put_many(self, msgs: list[ValueMessage], born: float) -> int:
        """The Outbox protocol (the bridge adds readings one by one): JSON readings, up to the first refused."""
        n = 0
        for m in msgs:
            if not self.put(m):
                break
            n += 1
        return n

    def take(self) -> tuple[int, Message] | None:
        if not self._ready():
            return None
        if self._spool is not None:
            item = self._spool.take()
            if item is None:
                return None
            ref, r = item[0], tuple(json.loads(item[1].payload))
        elif self._pending:
            ref, r, born = self._pending.popleft()
            self._taken[ref] = (r, born)
        else:
            return None
        device, metric, value, flags, ts, live, session = r
        historical = not live or session != self._session()
        self.historical += historical
        return ref, self._encode(device, metric, value, flags, ts, historical)

    def pop_qos0(self) -> Message | None:
        """The Outbox protocol: never (readings are encoded at ``take``, where the session and the
        historical flag are decided); the publisher then takes each one."""
        return None

    def done(self, ref: int) -> None:
        if self._spool is not None:
            self._spool.done(ref)
        else:
            self._taken.pop(ref, None)

    def rewind(self) -> int:
        if self._spool is not None:
            return self._spool.rewind()
        n = len(self._taken)
        self._pending.extendleft([(ref, r, born) for ref, (r, born) in sorted(self._taken.items(), reverse=True)])
        self._taken.clear()
        return n

    def oldest_born(self) -> float | None:
        """When the oldest reading waiting here came (held, in flight or spooled); None when none."""
        if self._spool is not None:
            return self._spool.oldest_born()
        borns = [born for _r, born in self._taken.values()]
        if self._pending:
            borns.append(self._pending[0][2])  # FIFO: the first is the oldest
        return min(borns) if borns else None

    def __len__(self) -> int:
        """Held readings are not the publisher's to wait for (a stop while the host is away must not hang)."""
        return self.backlog() if self._ready() else 0

    def backlog(self) -> int:
        if self._spool is not None:
            return len(self._spool)
        return len(self._pending) + len(self._taken)
