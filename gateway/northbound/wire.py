"""MQTT PUBLISH encoding for the hot path (MQTT 3.1.1 §3.3, MQTT 5 §3.3).

gmqtt builds each PUBLISH through a Message object and a generic property encoder; that
was half of the publisher's CPU time. This encoder does the one packet we send in bulk.
"""

from __future__ import annotations

import struct

_H = struct.Struct("!H")
_EXPIRY = struct.Struct("!BBI")  # property length 5, id 0x02 (message expiry interval), seconds


def varint(n: int) -> bytes:
    """MQTT variable byte integer (remaining length)."""
    if n < 128:
        return bytes((n,))
    if n < 16384:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes, qos: int, retain: bool, mid: int | None, v5: bool,
                   expiry: int | None = None) -> bytes:
    """One PUBLISH packet; ``mid`` only for QoS > 0, properties only on MQTT 5."""
    var = _H.pack(len(topic)) + topic
    if qos:
        var += _H.pack(mid)
    if v5:
        var += _EXPIRY.pack(5, 0x02, expiry) if expiry else b"\x00"
    return bytes((0x30 | qos << 1 | int(retain),)) + varint(len(var) + len(payload)) + var + payload


_TOPICS: dict[str, bytes] = {}
#: topics kept encoded (one per measurement; a site of 100,000 points fits, anything beyond is encoded each time)
_TOPICS_MAX = 1 << 18


def topic_field(topic: str) -> bytes:
    """The topic as a PUBLISH carries it (length + UTF-8), cached per topic: a point publishes to one topic."""
    b = _TOPICS.get(topic)
    if b is None:
        raw = topic.encode()
        b = _H.pack(len(raw)) + raw
        if len(_TOPICS) < _TOPICS_MAX:
            _TOPICS[topic] = b
    return b


def publish_head(topic: str, payload_len: int, qos: int, retain: bool, mid: int | None, v5: bool,
                 expiry: int | None = None) -> bytearray:
    """Everything of a PUBLISH before its payload (as :func:`publish_packet`), so the payload is copied
    only once, into the outgoing buffer."""
    var = topic_field(topic)
    if qos:
        var += _H.pack(mid)
    if v5:
        var += _EXPIRY.pack(5, 0x02, expiry) if expiry else b"\x00"
    head = bytearray((0x30 | qos << 1 | int(retain),))
    head += varint(len(var) + payload_len)
    head += var
    return head


#: per protocol (3.1.1, 5): topic → the variable header of a QoS 0 PUBLISH without expiry (topic field
#: and, on MQTT 5, an empty property list); keyed by the topic alone (a tuple key cost a tuple per value)
_VAR0: tuple[dict[str, bytes], dict[str, bytes]] = ({}, {})


def append_publish0(out: bytearray, topic: str, payload: bytes, retain: bool, v5: bool, expiry: int | None) -> None:
    """Append a QoS 0 PUBLISH to ``out`` (the bulk of what the gateway sends): the topic and property
    bytes of a topic are encoded once, the payload is copied once."""
    if expiry:
        out += publish_head(topic, len(payload), 0, retain, None, v5, expiry)
        out += payload
        return
    cache = _VAR0[v5]
    var = cache.get(topic)
    if var is None:
        var = topic_field(topic) + (b"\x00" if v5 else b"")
        if len(cache) < _TOPICS_MAX:
            cache[topic] = var
    n = len(var) + len(payload)
    if n < 128:
        out += bytes((0x31 if retain else 0x30, n))
    elif n < 16384:
        out += bytes((0x31 if retain else 0x30, n & 0x7F | 0x80, n >> 7))
    else:
        out.append(0x31 if retain else 0x30)
        out += varint(n)
    out += var
    out += payload
