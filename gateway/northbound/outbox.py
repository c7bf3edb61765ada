"""Where accepted messages wait for the broker: the in-memory bounded queue.

The publisher needs only the operations of ``Outbox``, so an in-memory queue, the durable
spool (gateway.northbound.spool) and the Sparkplug outbox are interchangeable: ``put`` accepts
or refuses one message, ``put_many`` a batch of values (the normaliser's list, one call),
``take`` hands out the next message in order, ``done`` forgets a delivered one, ``rewind`` puts
taken but undelivered messages back in front (after a connection loss) so they are re-sent in
order, ``oldest_born`` says since when the oldest value waits (the publisher's oldest queued age),
``pop_qos0`` is ``take`` and ``done`` of a QoS 0 head in one call (None: use ``take``; the Sparkplug
outbox, which encodes at ``take``, always says None).
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from gateway.northbound.message import Message, ValueMessage


class Outbox(Protocol):
    def put(self, msg: Message, kind: str = "analog", seq: int | None = None) -> bool: ...

    def put_many(self, msgs: list[ValueMessage], born: float) -> int:
        """Queue values in order, stamping ``born`` (now) on each; how many were accepted (a prefix)."""
        ...

    def take(self) -> tuple[int, Message] | None: ...

    def pop_qos0(self) -> Message | None:
        """The head taken and done at once if it is a QoS 0 message, else None (the caller then uses ``take``)."""
        ...

    def done(self, ref: int) -> None: ...

    def rewind(self) -> int: ...

    def __len__(self) -> int: ...

    def oldest_born(self) -> float | None:
        """``born`` of the oldest value waiting here, taken or not; None when none (state messages have none)."""
        ...


class MemoryOutbox:
    """Bounded FIFO. When full, ``put`` refuses the new message (the caller counts it)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"queue_size must be >= 1, got {size}")
        self.size = size
        self._pending: deque[tuple[int, Message]] = deque()
        self._taken: dict[int, Message] = {}
        self._next = 0

    def put(self, msg: Message, kind: str = "analog", seq: int | None = None) -> bool:
        if len(self._pending) + len(self._taken) >= self.size:
            return False
        self._next += 1
        self._pending.append((self._next, msg))
        return True

    def put_many(self, msgs: list[ValueMessage], born: float) -> int:
        """The batch up to the bound (newest refused, the caller counts them); refs numbered in C (zip)."""
        room = self.size - len(self._pending) - len(self._taken)
        if room <= 0:
            return 0
        batch = msgs if len(msgs) <= room else msgs[:room]
        for m in batch:
            m.born = born
        first = self._next + 1
        self._next += len(batch)
        self._pending.extend(zip(range(first, self._next + 1), batch))
        return len(batch)

    def take(self) -> tuple[int, Message] | None:
        if not self._pending:
            return None
        ref, msg = self._pending.popleft()
        self._taken[ref] = msg
        return ref, msg

    def pop_qos0(self) -> Message | None:
        """``take`` and ``done`` at once when the next message is QoS 0 (the publisher counts it delivered as it
        writes it, so nothing is kept to re-send); None when the queue is empty or the next one needs a PUBACK."""
        pending = self._pending
        if pending and not pending[0][1].qos:
            return pending.popleft()[1]
        return None

    def done(self, ref: int) -> None:
        self._taken.pop(ref, None)

    def rewind(self) -> int:
        """Undelivered messages go back in front, oldest first; returns how many."""
        n = len(self._taken)
        self._pending.extendleft(sorted(self._taken.items(), reverse=True))
        self._taken.clear()
        return n

    def __len__(self) -> int:
        return len(self._pending) + len(self._taken)

    def oldest_born(self) -> float | None:
        """``born`` of the oldest value waiting here (taken or not); None when none (state messages have none)."""
        borns = [m.born for m in self._taken.values() if m.born]
        first = next((m.born for _r, m in self._pending if m.born), None)  # FIFO: the first value is the oldest
        if first is not None:
            borns.append(first)
        return min(borns) if borns else None
