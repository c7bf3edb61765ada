"""Sparkplug B (v3.0) encoding: topics, payloads and the edge-node session rules.

Our own encoder for the Sparkplug B protobuf schema (sparkplug_b.proto, fields below), so
no protobuf runtime and no paho pin. What it implements (docs/sparkplug.md for hosts):

* topics ``spBv1.0/{group}/NBIRTH|NDATA|NDEATH|NCMD/{edge}`` and ``DBIRTH|DDATA|DDEATH|DCMD/{edge}/{device}``;
* ``bdSeq``: a new value for every MQTT CONNECT, carried by the NDEATH will and the NBIRTH
  that follows (``will()`` advances it; ``on_session`` persists it across restarts);
* ``seq``: 0 in NBIRTH, then +1 (mod 256) on every NBIRTH/DBIRTH/NDATA/DDATA/DDEATH;
* metric aliases: small integers given by the caller (persisted, sparkplug_state.py) or numbered
  in name order; names and datatypes only at birth, aliases in data;
* metric properties: ``Quality`` (Int32: 192 good, 0 bad, 500 stale) on every metric, and at
  birth the string properties the catalogue gives (``engUnit``, ``mRID``);
* ``is_historical`` on data re-sent after an outage (their original timestamps kept);
* rebirth on NCMD ``Node Control/Rebirth`` = true; DCMD metrics decoded by ``command_metrics``.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from gateway.encoding import epoch_ms
from gateway.northbound.message import Message
from gateway.site.quality import Q

NAMESPACE = "spBv1.0"

# DataType enum of sparkplug_b.proto
INT32, INT64, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING = 3, 4, 8, 9, 10, 11, 12
DATATYPES = {"Int32": INT32, "Int64": INT64, "UInt64": UINT64, "Float": FLOAT, "Double": DOUBLE, "Boolean": BOOLEAN,
             "String": STRING}

QUALITY_GOOD, QUALITY_BAD, QUALITY_STALE = 192, 0, 500
REBIRTH = "Node Control/Rebirth"


def quality_code(flags: int) -> int:
    """gridgate Q bits → the Sparkplug convention: 0 bad (invalid), 500 stale (old data), 192 good."""
    if flags & 0x3 == int(Q.INVALID):
        return QUALITY_BAD
    if flags & int(Q.OLD_DATA) or flags & 0x3 == int(Q.QUESTIONABLE):
        return QUALITY_STALE
    return QUALITY_GOOD


# ---------------------------------------------------------------- protobuf wire format (writer only)

_ONE_BYTE = [bytes((i,)) for i in range(128)]


def _varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _ONE_BYTE[n]  # keys, datatypes, flags, most lengths and seq: the per-value hot path
    n &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field_no: int, wire: int) -> bytes:
    return _varint(field_no << 3 | wire)


def _uint(field_no: int, v: int) -> bytes:
    return _key(field_no, 0) + _varint(v)


def _bytes(field_no: int, v: bytes) -> bytes:
    return _key(field_no, 2) + _varint(len(v)) + v


def _value(datatype: int, v: Any) -> bytes:
    """Metric.value oneof: int_value=10, long_value=11, float_value=12, double_value=13, boolean_value=14, string_value=15."""
    if datatype == INT32:
        return _uint(10, int(v) & 0xFFFFFFFF)
    if datatype in (INT64, UINT64):
        return _uint(11, int(v))
    if datatype == FLOAT:
        return _key(12, 5) + struct.pack("<f", float(v))
    if datatype == DOUBLE:
        return _key(13, 1) + struct.pack("<d", float(v))
    if datatype == BOOLEAN:
        return _uint(14, 1 if v else 0)
    if datatype == STRING:
        return _bytes(15, str(v).encode())
    raise ValueError(f"Sparkplug datatype {datatype} is not supported here; use one of {sorted(DATATYPES)}")


_QUALITY_ONLY: dict[int, bytes] = {}


def _quality_properties(code: int, strings: tuple[tuple[str, str], ...] = ()) -> bytes:
    """PropertySet {keys=1, values=2: PropertyValue{type=1, int_value=3 | string_value=8}}: Quality, then strings."""
    if not strings:
        cached = _QUALITY_ONLY.get(code)
        if cached is None:
            cached = _QUALITY_ONLY[code] = _bytes(1, b"Quality") + _bytes(2, _uint(1, INT32) + _uint(3, code))
        return cached
    out = _bytes(1, b"Quality") + _bytes(2, _uint(1, INT32) + _uint(3, code))
    for key, text in strings:
        out += _bytes(1, key.encode()) + _bytes(2, _uint(1, STRING) + _bytes(8, text.encode()))
    return out


def encode_metric(*, name: str | None = None, alias: int | None = None, timestamp_ms: int | None = None,
                  datatype: int | None = None, value: object = None, quality: int | None = None,
                  properties: tuple[tuple[str, str], ...] = ()) -> bytes:
    """One Metric: name=1, alias=2, timestamp=3, datatype=4, is_null=7, properties=9, value=10..15."""
    out = b""
    if name is not None:
        out += _bytes(1, name.encode())
    if alias is not None:
        out += _uint(2, alias)
    if timestamp_ms is not None:
        out += _uint(3, timestamp_ms)
    if datatype is not None:
        out += _uint(4, datatype)
    if value is None:
        out += _uint(7, 1)
    if quality is not None:
        out += _bytes(9, _quality_properties(quality, properties))
    if value is not None:
        out += _value(datatype if datatype is not None else DOUBLE, value)
    return out


def encode_payload(timestamp_ms: int, metrics: list[bytes], seq: int | None) -> bytes:
    """Payload: timestamp=1, metrics=2 (repeated), seq=3."""
    out = _uint(1, timestamp_ms) + b"".join(_bytes(2, m) for m in metrics)
    if seq is not None:
        out += _uint(3, seq)
    return out


# ---------------------------------------------------------------- the edge node session

@dataclass(frozen=True)
class MetricDef:
    name: str
    datatype: int
    alias: int
    properties: tuple[tuple[str, str], ...] = ()  # string properties sent at birth (engUnit, mRID)


#: catalogue entry: (metric name, datatype name) or (metric name, datatype name, {property: text})
CatalogueItem = tuple[str, str] | tuple[str, str, dict[str, str]]


@dataclass
class SparkplugNode:
    """One edge node (the gateway) and its devices; builds every message in session order.

    ``catalogue`` maps device → [(metric name, datatype name[, string properties])] — the gateway's
    measurements. ``aliases`` maps ``device/metric`` → alias (default: 1, 2, … in name order).
    ``on_session`` gives the bdSeq of each new session (default: the previous + 1 mod 256).
    """

    group: str
    edge: str
    catalogue: dict[str, list[CatalogueItem]]
    bd_seq: int = -1
    seq: int = 0
    aliases: Mapping[str, int] | None = None
    on_session: Callable[[], int] | None = None
    metrics: dict[str, dict[str, MetricDef]] = field(init=False)
    by_alias: dict[int, tuple[str, MetricDef]] = field(init=False)

    def __post_init__(self) -> None:
        for part, what in ((self.group, "group"), (self.edge, "edge node id")):
            if not part or any(c in part for c in "/+#"):
                raise ValueError(f"Sparkplug {what} {part!r}: must be non-empty without '/', '+' or '#'")
        aliases = self.aliases
        if aliases is None:
            names = sorted(f"{d}/{item[0]}" for d, items in self.catalogue.items() for item in items)
            aliases = {n: i for i, n in enumerate(names, 1)}
        self.metrics = {}
        self.by_alias = {}
        for device, items in self.catalogue.items():
            if not device or any(c in device for c in "/+#"):
                raise ValueError(f"Sparkplug device id {device!r}: must be non-empty without '/', '+' or '#'")
            defs = {}
            for item in items:
                name, dtype = item[0], item[1]
                props = tuple((item[2] if len(item) > 2 else {}).items())
                if dtype not in DATATYPES:
                    raise ValueError(f"Sparkplug metric {device}/{name}: datatype {dtype!r}, use one of {sorted(DATATYPES)}")
                alias = aliases.get(f"{device}/{name}")
                if alias is None:
                    raise ValueError(f"Sparkplug metric {device}/{name} has no alias (give every metric one, or none)")
                if alias in self.by_alias:
                    other = self.by_alias[alias]
                    raise ValueError(f"Sparkplug alias collision: {device}/{name} and {other[0]}/{other[1].name}; rename one")
                d = MetricDef(name, DATATYPES[dtype], alias, props)
                self.by_alias[alias] = (device, d)
                defs[name] = d
            self.metrics[device] = defs

    def topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.edge}"
        return f"{base}/{device}" if device else base

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    def will(self) -> Message:
        """A new session: advance bdSeq and return the NDEATH to register as the MQTT will."""
        self.bd_seq = self.on_session() if self.on_session is not None else (self.bd_seq + 1) % 256
        payload = encode_payload(_now_ms(), [encode_metric(name="bdSeq", datatype=INT64, value=self.bd_seq)], None)
        return Message(self.topic("NDEATH"), payload, qos=1, retain=False)

    def node_birth(self) -> Message:
        """NBIRTH (seq 0) with this session's bdSeq and the rebirth control."""
        if self.bd_seq < 0:
            raise RuntimeError("SparkplugNode.node_birth() before will(): register the NDEATH will first")
        self.seq = 0
        now = _now_ms()
        metrics = [encode_metric(name="bdSeq", timestamp_ms=now, datatype=INT64, value=self.bd_seq),
                   encode_metric(name=REBIRTH, timestamp_ms=now, datatype=BOOLEAN, value=False)]
        return Message(self.topic("NBIRTH"), encode_payload(now, metrics, self._next_seq()), qos=0)

    def death(self) -> Message:
        """This session's NDEATH (its bdSeq), for a clean stop: a clean DISCONNECT discards the will."""
        payload = encode_payload(_now_ms(), [encode_metric(name="bdSeq", datatype=INT64, value=self.bd_seq)], None)
        return Message(self.topic("NDEATH"), payload, qos=1, retain=False)

    def device_birth(self, device: str, values: dict[str, tuple[object, int, float]]) -> Message:
        """DBIRTH: every metric of ``device`` with name, alias, datatype; ``values`` name → (value, Q bits, epoch s)."""
        defs = self._defs(device)
        now = _now_ms()
        metrics = []
        for name, d in defs.items():
            value, flags, ts = values.get(name, (None, int(Q.INVALID), 0.0))
            metrics.append(encode_metric(name=d.name, alias=d.alias, timestamp_ms=_ms(ts) if ts else now,
                                         datatype=d.datatype, value=value, quality=quality_code(flags),
                                         properties=d.properties))
        return Message(self.topic("DBIRTH", device), encode_payload(now, metrics, self._next_seq()), qos=0)

    def device_data(self, device: str, changes: list[tuple[str, object, int, float]], historical: bool = False) -> Message:
        """DDATA: changed metrics by alias only (no name, no datatype); ``changes`` = (name, value, Q bits, epoch s).

        ``historical``: values re-sent after an outage, flagged ``is_historical`` so a host does not take them as live.
        """
        defs = self._defs(device)
        metrics = []
        for name, value, flags, ts in changes:
            d = defs.get(name)
            if d is None:
                raise KeyError(f"Sparkplug device {device!r} has no metric {name!r} in its birth certificate")
            metrics.append(_data_metric(d, value, ts, quality_code(flags), historical))
        return Message(self.topic("DDATA", device), encode_payload(_now_ms(), metrics, self._next_seq()), qos=0)

    def device_death(self, device: str) -> Message:
        self._defs(device)
        return Message(self.topic("DDEATH", device), encode_payload(_now_ms(), [], self._next_seq()), qos=0)

    def _defs(self, device: str) -> dict[str, MetricDef]:
        defs = self.metrics.get(device)
        if defs is None:
            raise KeyError(f"Sparkplug device {device!r} is not in the catalogue ({', '.join(self.metrics)})")
        return defs


def _data_metric(d: MetricDef, value: object, ts: float, quality: int, historical: bool = False) -> bytes:
    """A DDATA metric: alias, timestamp, [is_historical=5], quality, value typed as at birth (no datatype)."""
    out = _uint(2, d.alias) + _uint(3, _ms(ts))
    if historical:
        out += _uint(5, 1)
    if value is None:
        out += _uint(7, 1)
    out += _bytes(9, _quality_properties(quality))
    if value is not None:
        out += _value(d.datatype, value)
    return out


def _ms(t: float) -> int:
    return epoch_ms(t)  # the CIM timeStamp's rule: both encodings name the same millisecond


def _now_ms() -> int:
    return _ms(time.time())


# ---------------------------------------------------------------- NCMD / DCMD (what we read)

def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        no, wire = key >> 3, key & 7
        v: Any
        if wire == 0:
            v, i = _read_varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            ln, i = _read_varint(buf, i)
            v, i = buf[i:i + ln], i + ln
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated field")
        yield no, v


@dataclass
class InMetric:
    """One metric of an NCMD/DCMD as the host sent it (a name or an alias; a typed value or null)."""

    name: str | None = None
    alias: int | None = None
    timestamp_ms: int | None = None
    datatype: int | None = None
    value: object = None
    properties: dict[str, object] = field(default_factory=dict)


def _signed(n: int, bits: int) -> int:
    return n - (1 << bits) if n >= 1 << (bits - 1) else n


def _metric(buf: bytes) -> InMetric:
    m = InMetric()
    for no, v in _fields(buf):
        if no == 1:
            m.name = v.decode()
        elif no == 2:
            m.alias = v
        elif no == 3:
            m.timestamp_ms = v
        elif no == 4:
            m.datatype = v
        elif no == 9:
            m.properties = _property_set(v)
        elif no == 10:
            m.value = _signed(v & 0xFFFFFFFF, 32)
        elif no == 11:
            m.value = _signed(v, 64)
        elif no == 12:
            m.value = struct.unpack("<f", v)[0]
        elif no == 13:
            m.value = struct.unpack("<d", v)[0]
        elif no == 14:
            m.value = bool(v)
        elif no == 15:
            m.value = v.decode()
    if m.datatype in (BOOLEAN,) and isinstance(m.value, int) and not isinstance(m.value, bool):
        m.value = bool(m.value)
    return m


def _property_set(buf: bytes) -> dict[str, object]:
    keys: list[str] = []
    values: list[object] = []
    for no, v in _fields(buf):
        if no == 1:
            keys.append(v.decode())
        elif no == 2:
            value: object = None
            for pno, pv in _fields(v):
                if pno in (3, 4):
                    value = pv
                elif pno == 7:
                    value = bool(pv)
                elif pno == 8:
                    value = pv.decode()
            values.append(value)
    return dict(zip(keys, values))


def command_metrics(payload: bytes) -> tuple[int | None, list[InMetric]]:
    """An NCMD/DCMD payload: (payload timestamp in ms or None, its metrics). Malformed → ValueError naming it."""
    timestamp: int | None = None
    metrics: list[InMetric] = []
    try:
        for no, v in _fields(payload):
            if no == 1 and isinstance(v, int):
                timestamp = v
            elif no == 2 and isinstance(v, bytes):
                metrics.append(_metric(v))
    except (ValueError, UnicodeDecodeError, struct.error, TypeError, AttributeError) as exc:
        raise ValueError(f"Sparkplug command payload is not a valid Sparkplug B protobuf: {exc}") from exc
    return timestamp, metrics


def is_rebirth_request(payload: bytes) -> bool:
    """True when an NCMD payload sets ``Node Control/Rebirth`` to true. Malformed → ValueError naming the problem."""
    try:
        _, metrics = command_metrics(payload)
    except ValueError as exc:
        raise ValueError(str(exc).replace("command payload", "NCMD payload")) from exc
    return any(m.name == REBIRTH and m.value is True for m in metrics)
