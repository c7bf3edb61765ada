"""GOOSE subscriber of the gateway: an IED's GOOSE messages (IEC 61850-8-1) turned into event Readings.

libiec61850's GooseReceiver listens on a raw Ethernet interface (inside a lab network namespace);
each GoCB's data-set members are matched, in order, to the points whose references they cover.
The first message is the state (Readings, not events); a message with a new stNum is a change: each
member whose value or quality changed becomes an event Reading with the member's own t;
retransmissions (same stNum) are counted, not repeated.
"""

from __future__ import annotations

import ctypes as C
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

from gateway.pipeline import Reading
from gateway.protocols.iec61850.config import MmsPoint
from gateway.protocols.iec61850.libiec import MMS_BIT_STRING, MMS_UTC_TIME, element, lib, scalar, utc_time
from gateway.southbound.iec61850.mapping import split_member

log = logging.getLogger(__name__)

GooseListener = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p)
_SIGS = {
    "GooseReceiver_create": (C.c_void_p, []),
    "GooseReceiver_setInterfaceId": (None, [C.c_void_p, C.c_char_p]),
    "GooseReceiver_addSubscriber": (None, [C.c_void_p, C.c_void_p]),
    "GooseReceiver_start": (None, [C.c_void_p]),
    "GooseReceiver_stop": (None, [C.c_void_p]),
    "GooseReceiver_isRunning": (C.c_bool, [C.c_void_p]),
    "GooseReceiver_destroy": (None, [C.c_void_p]),
    "GooseSubscriber_create": (C.c_void_p, [C.c_char_p, C.c_void_p]),
    "GooseSubscriber_setListener": (None, [C.c_void_p, GooseListener, C.c_void_p]),
    "GooseSubscriber_isValid": (C.c_bool, [C.c_void_p]),
    "GooseSubscriber_getStNum": (C.c_uint32, [C.c_void_p]),
    "GooseSubscriber_getSqNum": (C.c_uint32, [C.c_void_p]),
    "GooseSubscriber_getTimestamp": (C.c_uint64, [C.c_void_p]),
    "GooseSubscriber_getDataSetValues": (C.c_void_p, [C.c_void_p]),
}


def glib() -> C.CDLL:
    L = lib()
    for name, (res, args) in _SIGS.items():
        f = getattr(L, name)
        if f.argtypes is None:
            f.restype, f.argtypes = res, args
    return L


@dataclass
class GooseStats:
    messages: int = 0
    changes: int = 0
    retransmissions: int = 0
    invalid: int = 0


@dataclass
class _Sub:
    gocb: str
    members: list[tuple[MmsPoint, tuple[int, ...]] | None]  # per data-set member: point and path inside it
    st_num: int | None = None
    ptr: int = 0
    last: dict[int, tuple] = field(default_factory=dict)  # member index → (value, quality) last passed on


@dataclass
class GooseSubscriber:
    """``start()`` listens; ``on_reading`` is called on libiec61850's receive thread (hand it to asyncio
    with ``loop.call_soon_threadsafe``)."""

    device: str
    interface: str
    on_reading: Callable[[Reading], None]
    stats: GooseStats = field(default_factory=GooseStats)

    def __post_init__(self) -> None:
        self._subs: list[_Sub] = []
        self._receiver: int | None = None
        self._cb = GooseListener(self._message)
        self._lock = threading.Lock()

    def subscribe(self, gocb_ref: str, members: list[str], points: list[MmsPoint]) -> None:
        """``gocb_ref`` like ``LD/LLN0$GO$gcb01``; ``members`` the data-set's FCD references in order
        (``LD/LN.Pos[ST]`` or ``LD/LN$ST$Pos``), as read from the IED (MMS GetDataSetDirectory)."""
        bound: list[tuple[MmsPoint, tuple[int, ...]] | None] = []
        for m in members:
            ref, fc = split_member(m)
            hit = None
            for p in points:
                if p.reference.startswith(ref + ".") and ("ST" if p.fc == "CO" else p.fc) == fc:
                    hit = (p, _path_in(p.reference[len(ref) + 1 :]))
                    break
            bound.append(hit)
        self._subs.append(_Sub(gocb_ref, bound))

    def start(self) -> None:
        L = glib()
        self._receiver = L.GooseReceiver_create()
        L.GooseReceiver_setInterfaceId(self._receiver, self.interface.encode())
        for i, s in enumerate(self._subs):
            s.ptr = L.GooseSubscriber_create(s.gocb.encode(), None)
            L.GooseSubscriber_setListener(s.ptr, self._cb, C.c_void_p(i + 1))
            L.GooseReceiver_addSubscriber(self._receiver, s.ptr)
        L.GooseReceiver_start(self._receiver)
        if not L.GooseReceiver_isRunning(self._receiver):
            self.stop()
            raise OSError(f"{self.device}: cannot receive GOOSE on {self.interface!r} (needs a raw socket: root in a lab namespace)")

    def stop(self) -> None:
        L = glib()
        if self._receiver:
            L.GooseReceiver_stop(self._receiver)
            L.GooseReceiver_destroy(self._receiver)  # destroys the subscribers too
            self._receiver = None

    def _message(self, sub_ptr: int, param: int) -> None:
        """libiec61850's receive thread: never raise into C."""
        try:
            L = glib()
            s = self._subs[(param or 0) - 1]
            self.stats.messages += 1
            if not L.GooseSubscriber_isValid(sub_ptr):
                self.stats.invalid += 1
                return
            st = L.GooseSubscriber_getStNum(sub_ptr)
            if s.st_num == st:
                self.stats.retransmissions += 1
                return
            first = s.st_num is None
            s.st_num = st
            self.stats.changes += 1
            ts = L.GooseSubscriber_getTimestamp(sub_ptr) / 1000.0
            values = L.GooseSubscriber_getDataSetValues(sub_ptr)
            for i, b in enumerate(s.members):
                if b is None:
                    continue
                p, path = b
                v = element(values, (i, *path))
                if not v:
                    continue
                q = element(values, (i, 1))  # gridgate's status CDCs: value, q, t
                t = element(values, (i, 2))
                quality = L.Quality_fromMmsValue(q) if q and L.MmsValue_getType(q) == MMS_BIT_STRING else 0
                when = utc_time(t) if t and L.MmsValue_getType(t) == MMS_UTC_TIME else ts
                value = _engineering(p, scalar(v))
                if not first and s.last.get(i) == (value, quality):
                    continue  # another member changed
                s.last[i] = (value, quality)
                self.on_reading(Reading(f"{self.device}/{p.name}", value, quality, when, p.reference, not first))
        except Exception:
            log.exception("%s: GOOSE message from %s could not be decoded", self.device, self.interface)


def _path_in(rest: str) -> tuple[int, ...]:
    """Where a DA sits inside a GOOSE member: the data set carries the DO's ST attributes in model order;
    gridgate's CDCs put the value first (stVal, general)."""
    return (0,) if rest in ("stVal", "general") else ()


def _engineering(p: MmsPoint, raw):
    if p.measurement.kind == "Discrete":
        code = int(raw)
        return p.value_map.get(code, code) if p.value_map else code
    return raw


def attach(device: str, interface: str, conn, points: list[MmsPoint], on_reading) -> GooseSubscriber | None:
    """Subscribe to the GoCB of every LD that has gridgate's GOOSE data set (members read over MMS);
    None if no LD publishes GOOSE."""
    from gateway.southbound.iec61850.connection import MmsError

    sub = GooseSubscriber(device, interface, on_reading)
    for ld in dict.fromkeys(p.reference.split("/", 1)[0] for p in points):
        try:
            members = conn.dataset_members(f"{ld}/LLN0$dsGoose")
        except MmsError:
            continue
        sub.subscribe(f"{ld}/LLN0$GO$gcb01", members, points)
    if not sub._subs:
        log.warning("%s: goose_subscribe is set but no LD has a GOOSE data set (LLN0$dsGoose)", device)
        return None
    sub.start()
    return sub
