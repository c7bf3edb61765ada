"""Confirm-before-clear event buffers, one per class, with limits and overflow.

dnp3py deletes events as soon as it builds a response, so one lost response loses them.
Here an event sent in a response is only *selected* (tagged with the response it went in);
it is removed when the master confirms that response and returns to the queue when the
confirm does not come. A full class drops its oldest unselected event, counts it and raises
IIN2.3 until there is room again — never a silent loss.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from gateway.protocols.dnp3.objects import Obj

Tag = tuple[str, int]  # ("sol" | "uns", application sequence)


@dataclass(slots=True)
class Event:
    seq: int
    kind: str
    group: int
    var: int
    cls: int
    obj: Obj
    tag: Tag | None = None


@dataclass
class ClassStats:
    queued: int = 0
    confirmed: int = 0
    overflowed: int = 0


@dataclass
class EventBuffers:
    limits: dict[int, int]
    queues: dict[int, deque[Event]] = field(default_factory=lambda: {1: deque(), 2: deque(), 3: deque()})
    stats: dict[int, ClassStats] = field(default_factory=lambda: {1: ClassStats(), 2: ClassStats(), 3: ClassStats()})
    overflow: bool = False
    _ids: itertools.count = field(default_factory=itertools.count)

    def add(self, kind: str, group: int, var: int, cls: int, obj: Obj) -> None:
        q = self.queues[cls]
        if len(q) >= self.limits[cls]:
            victim = next((e for e in q if e.tag is None), None)
            self.stats[cls].overflowed += 1
            self.overflow = True
            if victim is None:
                return  # everything in flight: the new event is the one dropped (counted above)
            q.remove(victim)
        q.append(Event(next(self._ids), kind, group, var, cls, obj))
        self.stats[cls].queued += 1

    def pending(self, classes: set[int] | tuple[int, ...], kinds: set[str] | None = None) -> list[Event]:
        """Unselected events of these classes (and kinds), oldest first across classes."""
        out = [e for c in classes for e in self.queues[c] if e.tag is None and (kinds is None or e.kind in kinds)]
        out.sort(key=lambda e: e.seq)
        return out

    def has_pending(self, cls: int) -> bool:
        return any(e.tag is None for e in self.queues[cls])

    def confirm(self, tag: Tag) -> int:
        n = 0
        for c, q in self.queues.items():
            keep = deque(e for e in q if e.tag != tag)
            gone = len(q) - len(keep)
            if gone:
                self.stats[c].confirmed += gone
                self.queues[c] = keep
                n += gone
        if self.overflow and all(len(q) < self.limits[c] for c, q in self.queues.items()):
            self.overflow = False
        return n

    def release(self, kind: str | None = None) -> None:
        """Return selected events to the queue (no confirm came); ``kind`` "sol"/"uns" or all."""
        for q in self.queues.values():
            for e in q:
                if e.tag is not None and (kind is None or e.tag[0] == kind):
                    e.tag = None

    def count(self) -> int:
        return sum(len(q) for q in self.queues.values())
