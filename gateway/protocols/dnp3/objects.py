"""DNP3 application layer: function codes, IIN bits, object headers and object values.

One table (``LAYOUT``) describes the byte layout of every object variation we speak, and
both our master and our outstation encode and decode through it. It knows more widths than
dnp3py's parser, so an object we do not *use* (frozen counters, octet strings, CTO) is still
framed and skipped instead of truncating the fragment; a header that really cannot be
framed is reported with its offset and what was lost (``ParseResult.error``).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from enum import IntEnum

# ---------------------------------------------------------------- function codes
CONFIRM, READ, WRITE, SELECT, OPERATE, DIRECT_OPERATE, DIRECT_OPERATE_NR = 0, 1, 2, 3, 4, 5, 6
COLD_RESTART, WARM_RESTART = 13, 14
ENABLE_UNSOLICITED, DISABLE_UNSOLICITED = 20, 21
DELAY_MEASURE, RECORD_CURRENT_TIME = 23, 24
RESPONSE, UNSOLICITED_RESPONSE = 129, 130

# application control
FIR, FIN, CON, UNS = 0x80, 0x40, 0x20, 0x10

# IIN (iin1 | iin2 << 8)
IIN_ALL_STATIONS = 0x0001
IIN_CLASS1, IIN_CLASS2, IIN_CLASS3 = 0x0002, 0x0004, 0x0008
IIN_NEED_TIME = 0x0010
IIN_LOCAL_CONTROL = 0x0020
IIN_DEVICE_TROUBLE = 0x0040
IIN_DEVICE_RESTART = 0x0080
IIN_NO_FUNC_CODE = 0x0100
IIN_OBJECT_UNKNOWN = 0x0200
IIN_PARAMETER_ERROR = 0x0400
IIN_EVENT_BUFFER_OVERFLOW = 0x0800
IIN_ALREADY_EXECUTING = 0x1000
IIN_CLASS_BITS = {1: IIN_CLASS1, 2: IIN_CLASS2, 3: IIN_CLASS3}

# point flags (common bits 0-4; bits 5-7 depend on the group)
ONLINE, RESTART, COMM_LOST, REMOTE_FORCED, LOCAL_FORCED = 0x01, 0x02, 0x04, 0x08, 0x10
CHATTER_FILTER = 0x20  # binary, double-bit
OVER_RANGE, REFERENCE_ERR = 0x20, 0x40  # analog, analog output
ROLLOVER, DISCONTINUITY = 0x20, 0x40  # counter

#: CROB / analog output status codes (IEEE 1815-2012 table 11-8)
class CommandStatus(IntEnum):
    """Control-related status codes of CROB and analog output objects (IEEE 1815-2012, table 11-7)."""

    SUCCESS = 0
    TIMEOUT = 1
    NO_SELECT = 2
    FORMAT_ERROR = 3
    NOT_SUPPORTED = 4
    ALREADY_ACTIVE = 5
    HARDWARE_ERROR = 6
    LOCAL = 7
    TOO_MANY_OPS = 8
    NOT_AUTHORIZED = 9
    AUTOMATION_INHIBIT = 10
    PROCESSING_LIMITED = 11
    OUT_OF_RANGE = 12
    DOWNSTREAM_LOCAL = 13
    ALREADY_COMPLETE = 14
    BLOCKED = 15
    CANCELLED = 16
    BLOCKED_OTHER_MASTER = 17
    DOWNSTREAM_FAIL = 18
    NON_PARTICIPATING = 126
    UNDEFINED = 127


COMMAND_STATUS = {int(s): s.name for s in CommandStatus}

# CROB control codes
LATCH_ON, LATCH_OFF, PULSE_ON, PULSE_OFF = 0x03, 0x04, 0x01, 0x02
TCC_CLOSE, TCC_TRIP = 0x40, 0x80

# ---------------------------------------------------------------- groups per point kind
STATIC_GROUP = {"binary": 1, "double_binary": 3, "binary_output": 10, "counter": 20, "analog": 30, "analog_output": 40}
EVENT_GROUP = {"binary": 2, "double_binary": 4, "binary_output": 11, "counter": 22, "analog": 32, "analog_output": 42}
KIND_OF_GROUP = {g: k for k, g in STATIC_GROUP.items()} | {g: k for k, g in EVENT_GROUP.items()}
#: variations our outstation sends unless the point config overrides the event one
STATIC_VARIATION = {"binary": 2, "double_binary": 2, "binary_output": 2, "counter": 1, "analog": 5, "analog_output": 3}
EVENT_VARIATION = {"binary": 2, "double_binary": 2, "binary_output": 2, "counter": 5, "analog": 7, "analog_output": 7}

# Layout letters: q flags, B flags+state bit 7, D flags+state bits 6-7, i int32, h int16, I uint32,
# H uint16, f float32, d float64, t 48-bit ms time, r 16-bit relative ms, s command status, C CROB.
LAYOUT: dict[tuple[int, int], str] = {
    (1, 2): "B", (2, 1): "B", (2, 2): "Bt", (2, 3): "Br",
    (3, 2): "D", (4, 1): "D", (4, 2): "Dt", (4, 3): "Dr",
    (10, 2): "B", (11, 1): "B", (11, 2): "Bt",
    (12, 1): "C",
    (20, 1): "qI", (20, 2): "qH", (20, 5): "I", (20, 6): "H",
    (21, 1): "qI", (21, 2): "qH", (21, 5): "qIt", (21, 6): "qHt", (21, 9): "I", (21, 10): "H",
    (22, 1): "qI", (22, 2): "qH", (22, 5): "qIt", (22, 6): "qHt",
    (23, 1): "qI", (23, 2): "qH", (23, 5): "qIt", (23, 6): "qHt",
    (30, 1): "qi", (30, 2): "qh", (30, 3): "i", (30, 4): "h", (30, 5): "qf", (30, 6): "qd",
    (32, 1): "qi", (32, 2): "qh", (32, 3): "qit", (32, 4): "qht", (32, 5): "qf", (32, 6): "qd", (32, 7): "qft", (32, 8): "qdt",
    (40, 1): "qi", (40, 2): "qh", (40, 3): "qf", (40, 4): "qd",
    (41, 1): "is", (41, 2): "hs", (41, 3): "fs", (41, 4): "ds",
    (42, 1): "qi", (42, 2): "qh", (42, 3): "qit", (42, 4): "qht", (42, 5): "qf", (42, 6): "qd", (42, 7): "qft", (42, 8): "qdt",
    (50, 1): "t", (50, 3): "t", (50, 4): "tIB", (51, 1): "t", (51, 2): "t", (52, 1): "H", (52, 2): "H",
}
_SIZE = {"q": 1, "B": 1, "D": 1, "s": 1, "i": 4, "I": 4, "f": 4, "h": 2, "H": 2, "r": 2, "d": 8, "t": 6, "C": 11}
PACKED_BITS = {(1, 1): 1, (3, 1): 2, (10, 1): 1, (80, 1): 1}


def width(group: int, var: int) -> int | None:
    """Octets per object, None if unknown. Octet strings (g110/g111) are as long as their variation."""
    if group in (110, 111):
        return var or None
    lay = LAYOUT.get((group, var))
    return None if lay is None else sum(_SIZE[c] for c in lay)


@dataclass(slots=True)
class Obj:
    """One decoded object. ``value`` is bool (binary), int 0..3 (double-bit), int or float."""

    index: int
    value: float | int | bool | None = None
    flags: int = ONLINE
    time_ms: int | None = None
    status: int = 0
    crob: tuple[int, int, int, int] | None = None  # control code, count, on ms, off ms


def decode(group: int, var: int, raw: bytes, index: int) -> Obj:
    o = Obj(index)
    pos = 0
    for c in LAYOUT[(group, var)]:
        n = _SIZE[c]
        b = raw[pos : pos + n]
        pos += n
        if c == "q":
            o.flags = b[0]
        elif c == "B":
            o.flags, o.value = b[0] & 0x7F, bool(b[0] & 0x80)
        elif c == "D":
            o.flags, o.value = b[0] & 0x3F, b[0] >> 6
        elif c == "t":
            o.time_ms = int.from_bytes(b, "little")
        elif c == "r":
            o.time_ms = int.from_bytes(b, "little")  # relative; resolved against the CTO by the caller
        elif c == "s":
            o.status = b[0] & 0x7F
        elif c == "C":
            code, count, on, off, st = struct.unpack("<BBIIB", b)
            o.crob, o.status = (code, count, on, off), st & 0x7F
        else:
            o.value = struct.unpack("<" + c, b)[0]
    return o


def encode(group: int, var: int, o: Obj) -> bytes:
    out = bytearray()
    for c in LAYOUT[(group, var)]:
        if c == "q":
            out.append(o.flags & 0xFF)
        elif c == "B":
            out.append((o.flags & 0x7F) | (0x80 if o.value else 0))
        elif c == "D":
            out.append((o.flags & 0x3F) | ((int(o.value or 0) & 3) << 6))
        elif c == "t":
            out += int(o.time_ms or 0).to_bytes(6, "little")
        elif c == "r":
            out += int(o.time_ms or 0).to_bytes(2, "little")
        elif c == "s":
            out.append(o.status & 0x7F)
        elif c == "C":
            code, count, on, off = o.crob or (0, 1, 0, 0)
            out += struct.pack("<BBIIB", code, count, on, off, o.status & 0x7F)
        else:
            out += struct.pack("<" + c, _fit(c, o.value))
    return bytes(out)


_LIMITS = {"i": (-(2**31), 2**31 - 1), "h": (-(2**15), 2**15 - 1), "I": (0, 2**32 - 1), "H": (0, 2**16 - 1)}


def _fit(c: str, v: float | int | bool | None) -> float | int:
    if c in "fd":
        return float(v or 0.0)
    lo, hi = _LIMITS[c]
    return max(lo, min(hi, int(round(float(v or 0)))))


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- object headers


@dataclass(slots=True)
class Header:
    group: int
    var: int
    qualifier: int
    start: int = 0
    stop: int = -1
    count: int = 0
    objects: list[Obj] = field(default_factory=list)
    raw_items: list[tuple[int, bytes]] = field(default_factory=list)  # (index, object octets)
    offset: int = 0

    @property
    def all(self) -> bool:
        return self.qualifier == 0x06


@dataclass(slots=True)
class ParseResult:
    headers: list[Header]
    error: str | None = None  # why and where parsing stopped; the headers before it are valid


_RANGE = {0x00: 1, 0x01: 2, 0x02: 4}
_COUNT = {0x07: 1, 0x08: 2, 0x09: 4, 0x17: 1, 0x28: 2, 0x39: 4}
_PREFIX = {0x17: 1, 0x28: 2, 0x39: 4}


def parse_objects(data: bytes, with_data: bool, base: int = 0) -> ParseResult:
    """Frame every object header of a fragment body.

    ``with_data`` is False for READ / (dis)enable-unsolicited requests, whose headers carry
    ranges but no object octets. ``base`` is added to offsets in error messages.
    """
    hs: list[Header] = []
    pos = 0
    n = len(data)
    while pos < n:
        start_pos = pos
        if n - pos < 3:
            return ParseResult(hs, f"{n - pos} trailing octet(s) at offset {base + pos}, too few for an object header")
        g, v, q = data[pos], data[pos + 1], data[pos + 2]
        pos += 3
        h = Header(g, v, q, offset=base + start_pos)
        where = f"g{g}v{v} qualifier 0x{q:02X} at offset {base + start_pos}"
        if q in _RANGE:
            k = _RANGE[q]
            if n - pos < 2 * k:
                return ParseResult(hs, f"{where}: range field runs past the end of the fragment")
            h.start = int.from_bytes(data[pos : pos + k], "little")
            h.stop = int.from_bytes(data[pos + k : pos + 2 * k], "little")
            pos += 2 * k
            if h.stop < h.start:
                return ParseResult(hs, f"{where}: stop index {h.stop} is below start {h.start}")
            h.count = h.stop - h.start + 1
            indices: range | None = range(h.start, h.stop + 1)
        elif q in _COUNT:
            k = _COUNT[q]
            if n - pos < k:
                return ParseResult(hs, f"{where}: count field runs past the end of the fragment")
            h.count = int.from_bytes(data[pos : pos + k], "little")
            pos += k
            indices = None if q in _PREFIX else range(h.count)
        elif q == 0x06:
            hs.append(h)
            continue
        else:
            return ParseResult(hs, f"{where}: unsupported qualifier; {n - start_pos} octet(s) not processed")
        if not with_data and g not in (12, 41, 50, 80):
            prefix = _PREFIX.get(q, 0)
            if prefix:
                for _ in range(h.count):
                    if n - pos < prefix:
                        return ParseResult(hs, f"{where}: index list runs past the end of the fragment")
                    h.raw_items.append((int.from_bytes(data[pos : pos + prefix], "little"), b""))
                    pos += prefix
            hs.append(h)
            continue
        bits = PACKED_BITS.get((g, v))
        if bits and q not in _PREFIX:
            size = (h.count * bits + 7) // 8
            if n - pos < size:
                return ParseResult(hs, f"{where}: {h.count} packed objects need {size} octets, {n - pos} left")
            packed = int.from_bytes(data[pos : pos + size], "little")
            for j, idx in enumerate(indices or range(h.count)):
                val = (packed >> (j * bits)) & ((1 << bits) - 1)
                h.objects.append(Obj(idx, bool(val) if bits == 1 else val, ONLINE))
            pos += size
            hs.append(h)
            continue
        w = width(g, v)
        if w is None:
            return ParseResult(hs, f"{where}: unknown object (no known width); {n - start_pos} octet(s) not processed")
        prefix = _PREFIX.get(q, 0)
        for j in range(h.count):
            if n - pos < prefix + w:
                hs.append(h)  # the complete objects before the cut are still good
                return ParseResult(hs, f"{where}: object {j} of {h.count} runs past the end of the fragment (truncated)")
            idx = int.from_bytes(data[pos : pos + prefix], "little") if prefix else indices[j]  # type: ignore[index]
            pos += prefix
            raw = bytes(data[pos : pos + w])
            pos += w
            h.raw_items.append((idx, raw))
            if (g, v) in LAYOUT:
                h.objects.append(decode(g, v, raw, idx))
        hs.append(h)
    return ParseResult(hs)


def hdr_all(group: int, var: int) -> bytes:
    return bytes((group, var, 0x06))


def hdr_range(group: int, var: int, start: int, stop: int, payload: bytes = b"") -> bytes:
    if stop <= 0xFF:
        return bytes((group, var, 0x00, start, stop)) + payload
    return bytes((group, var, 0x01)) + start.to_bytes(2, "little") + stop.to_bytes(2, "little") + payload


def hdr_prefixed(group: int, var: int, items: list[tuple[int, bytes]], qualifier: int | None = None) -> bytes:
    """Index-prefixed objects: qualifier 0x17 when every index and the count fit a byte, else 0x28
    (dnp3py encodes 0x28 with a 1-byte count, which breaks indexes above 255). ``qualifier``
    forces one, for command echoes that must repeat the request byte for byte."""
    small = len(items) <= 0xFF and all(i <= 0xFF for i, _ in items)
    if qualifier is not None:
        small = qualifier == 0x17
    if small:
        out = bytearray((group, var, 0x17, len(items)))
        for i, b in items:
            out.append(i)
            out += b
    else:
        out = bytearray((group, var, 0x28)) + len(items).to_bytes(2, "little")
        for i, b in items:
            out += i.to_bytes(2, "little") + b
    return bytes(out)


def hdr_count(group: int, var: int, payload_items: list[bytes]) -> bytes:
    return bytes((group, var, 0x07, len(payload_items))) + b"".join(payload_items)


def request(seq: int, fc: int, body: bytes = b"", uns: bool = False) -> bytes:
    return bytes((FIR | FIN | (UNS if uns else 0) | (seq & 0x0F), fc)) + body


def response_header(control: int, fc: int, iin: int) -> bytes:
    return bytes((control, fc, iin & 0xFF, (iin >> 8) & 0xFF))


def class_reads(classes: tuple[int, ...]) -> bytes:
    """g60 headers for a class poll; class 0 (static) goes last so events precede statics."""
    body = b"".join(hdr_all(60, c + 1) for c in classes if c)
    return body + (hdr_all(60, 1) if 0 in classes else b"")
