"""An independent Sparkplug B decoder for the tests: a generic protobuf wire reader plus the
field numbers of sparkplug_b.proto (Eclipse Tahu). Shares no code with the encoder."""

from __future__ import annotations

import struct


def _varint(b: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return n, i


def wire(b: bytes) -> list[tuple[int, int, object]]:
    """[(field number, wire type, raw value)] in order."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = _varint(b, i)
        elif t == 1:
            v, i = b[i:i + 8], i + 8
        elif t == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif t == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {t}")
        out.append((f, t, v))
    assert i == len(b), "trailing bytes"
    return out


def _signed64(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def property_set(b: bytes) -> dict:
    keys, values = [], []
    for f, _, v in wire(b):
        if f == 1:
            keys.append(v.decode())
        elif f == 2:
            pv = {fn: val for fn, _, val in wire(v)}
            value = pv.get(3, pv.get(4))
            if 8 in pv:
                value = pv[8].decode()  # string_value
            values.append({"type": pv.get(1), "value": value})
    return dict(zip(keys, values))


def metric(b: bytes) -> dict:
    m: dict = {}
    for f, t, v in wire(b):
        if f == 1:
            m["name"] = v.decode()
        elif f == 2:
            m["alias"] = v
        elif f == 3:
            m["timestamp"] = v
        elif f == 4:
            m["datatype"] = v
        elif f == 5:
            m["is_historical"] = bool(v)
        elif f == 7:
            m["is_null"] = bool(v)
        elif f == 9:
            m["properties"] = property_set(v)
        elif f == 10:
            m["value"] = v - (1 << 32) if v >= 1 << 31 else v  # Int32 carried as uint32
        elif f == 11:
            m["value"] = _signed64(v)
        elif f == 12:
            m["value"] = struct.unpack("<f", v)[0]
        elif f == 13:
            m["value"] = struct.unpack("<d", v)[0]
        elif f == 14:
            m["value"] = bool(v)
        elif f == 15:
            m["value"] = v.decode()
    return m


def payload(b: bytes) -> dict:
    p: dict = {"metrics": []}
    for f, _, v in wire(b):
        if f == 1:
            p["timestamp"] = v
        elif f == 2:
            p["metrics"].append(metric(v))
        elif f == 3:
            p["seq"] = v
    return p


def ncmd_rebirth() -> bytes:
    """What a primary host sends: Payload{timestamp, metrics=[{name: Node Control/Rebirth, datatype Boolean, true}]}."""
    name = b"Node Control/Rebirth"
    m = bytes([0x0A, len(name)]) + name + bytes([0x20, 11, 0x70, 1])
    return bytes([0x08, 1, 0x12, len(m)]) + m


def _vi(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(field: int, b: bytes) -> bytes:
    return _vi(field << 3 | 2) + _vi(len(b)) + b


def command(timestamp_ms: int, metrics: list[dict]) -> bytes:
    """What a host sends as NCMD/DCMD. Each metric: name or alias, datatype (3 Int32, 11 Boolean), value,
    optional timestamp and string properties — written from sparkplug_b.proto, not with the gateway's encoder."""
    body = _vi(1 << 3) + _vi(timestamp_ms)
    for m in metrics:
        mb = b""
        if "name" in m:
            mb += _ld(1, m["name"].encode())
        if "alias" in m:
            mb += _vi(2 << 3) + _vi(m["alias"])
        if "timestamp" in m:
            mb += _vi(3 << 3) + _vi(m["timestamp"])
        mb += _vi(4 << 3) + _vi(m["datatype"])
        if m.get("properties"):
            ps = b""
            for k, v in m["properties"].items():
                ps += _ld(1, k.encode())
            for k, v in m["properties"].items():
                ps += _ld(2, _vi(1 << 3) + _vi(12) + _ld(8, v.encode()))
            mb += _ld(9, ps)
        if m["datatype"] == 11:
            mb += _vi(14 << 3) + _vi(int(m["value"]))
        else:
            mb += _vi(10 << 3) + _vi(m["value"] & 0xFFFFFFFF)
        body += _ld(2, mb)
    return body
