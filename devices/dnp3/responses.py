"""Build read responses that may span several fragments (2,000+ points), object by object.

Static data goes out as contiguous start-stop ranges, events as index-prefixed objects
grouped by variation. Each fragment remembers which events it carries, so the confirm of
that fragment clears exactly those.
"""

from __future__ import annotations

from typing import Any, Protocol

from devices.dnp3.events import Event
from gateway.protocols.dnp3 import objects as o


class Station(Protocol):
    """What a response needs of the outstation: its static values and its event buffers."""

    static: Any
    events: Any

_STATIC_ORDER = ("binary", "double_binary", "counter", "analog", "binary_output", "analog_output")
_RANGE_OVERHEAD = 7  # g, v, qualifier, 2-octet start and stop
_PREFIX_OVERHEAD = 5  # g, v, qualifier, 2-octet count


class FragmentPacker:
    def __init__(self, max_fragment: int) -> None:
        self.room_total = max_fragment - 4  # response header
        self.frags: list[tuple[bytearray, list[Event]]] = [(bytearray(), [])]

    def _room(self) -> int:
        return self.room_total - len(self.frags[-1][0])

    def _new(self) -> None:
        self.frags.append((bytearray(), []))

    def fragments(self) -> list[tuple[bytes, list[Event]]]:
        return [(bytes(b), ev) for b, ev in self.frags if b or len(self.frags) == 1]

    def add_static(self, kind: str, var: int, objs: list[o.Obj]) -> None:
        g = o.STATIC_GROUP[kind]
        w = o.width(g, var) or 1
        runs: list[list[o.Obj]] = []
        for ob in sorted(objs, key=lambda x: x.index):
            if runs and runs[-1][-1].index + 1 == ob.index:
                runs[-1].append(ob)
            else:
                runs.append([ob])
        for run in runs:
            while run:
                n = (self._room() - _RANGE_OVERHEAD) // w
                if n <= 0:
                    self._new()
                    continue
                chunk, run = run[:n], run[n:]
                payload = b"".join(o.encode(g, var, x) for x in chunk)
                self.frags[-1][0].extend(o.hdr_range(g, var, chunk[0].index, chunk[-1].index, payload))

    def add_events(self, events: list[Event], single: bool = False) -> list[Event]:
        """Pack events in order; ``single`` stops at the first fragment (unsolicited). Returns those packed."""
        taken: list[Event] = []
        i = 0
        while i < len(events):
            g, var = events[i].group, events[i].var
            w = o.width(g, var) or 1
            n = (self._room() - _PREFIX_OVERHEAD) // (w + 2)
            if n <= 0:
                if single:
                    break
                self._new()
                continue
            j = i
            while j < len(events) and j - i < n and (events[j].group, events[j].var) == (g, var):
                j += 1
            batch = events[i:j]
            self.frags[-1][0].extend(o.hdr_prefixed(g, var, [(e.obj.index, o.encode(g, var, e.obj)) for e in batch]))
            self.frags[-1][1].extend(batch)
            taken.extend(batch)
            i = j
        return taken

    def add_reads(self, headers: list[o.Header], station: "Station") -> bool:
        """Serve every header of a READ; False if one named an object we do not have."""
        ok = True
        classes = [h.var - 1 for h in headers if h.group == 60 and h.var in (2, 3, 4) and h.all]
        if classes:
            self.add_events(station.events.pending(classes))
        for h in headers:
            if h.group == 60 and h.var in (2, 3, 4):
                if not h.all:  # count-limited class read
                    self.add_events(station.events.pending([h.var - 1])[: h.count])
            elif h.group == 60 and h.var == 1:
                for kind in _STATIC_ORDER:
                    self._static_kind(kind, 0, h, station)
            elif h.group in o.KIND_OF_GROUP and o.STATIC_GROUP[o.KIND_OF_GROUP[h.group]] == h.group:
                ok &= self._static_kind(o.KIND_OF_GROUP[h.group], h.var, h, station)
            elif h.group in o.KIND_OF_GROUP:
                kind = o.KIND_OF_GROUP[h.group]
                evs = station.events.pending((1, 2, 3), {kind})
                self.add_events(evs[: h.count] if h.qualifier in (0x07, 0x08) else evs)
            else:
                ok = False
        return ok

    def _static_kind(self, kind: str, var: int, h: o.Header, station: "Station") -> bool:
        var = var or o.STATIC_VARIATION[kind]
        if (o.STATIC_GROUP[kind], var) not in o.LAYOUT:
            return False
        objs = [ob for (k, _), ob in station.static.items() if k == kind]
        if h.group != 60 and not h.all:
            if h.qualifier in (0x00, 0x01, 0x02):
                objs = [x for x in objs if h.start <= x.index <= h.stop]
            else:
                wanted = {i for i, _ in h.raw_items}
                objs = [x for x in objs if x.index in wanted]
        if objs:
            self.add_static(kind, var, objs)
        return True
