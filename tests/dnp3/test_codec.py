"""Byte-level checks of the shared codec where dnp3py gets it wrong or stays silent."""

from __future__ import annotations

from gateway.protocols.dnp3 import objects as o
from gateway.protocols.dnp3.flags import from_quality, to_quality
from gateway.protocols.dnp3.link import FrameDecoder, LinkStats
from gateway.site.quality import Q
from gateway.southbound.dnp3.commands import command_body
from tests.dnp3.sites import device


def test_crob_above_index_255_uses_two_octet_count() -> None:
    dev = device([{"name": "far", "group": "binary_output", "index": 300}])
    group, body = command_body(dev.points[0], True)
    assert group == 12 and body[:3] == bytes((12, 1, 0x28))
    assert body[3:5] == b"\x01\x00" and body[5:7] == (300).to_bytes(2, "little")  # count 1, index 300
    assert body[7] == o.LATCH_ON and len(body) == 7 + 11
    (h,) = o.parse_objects(body, True).headers
    assert h.objects[0].index == 300 and h.objects[0].crob[0] == o.LATCH_ON


def test_breaker_close_trip_and_analog_output_encoding() -> None:
    dev = device([
        {"name": "CB", "group": "double_binary", "index": 4},
        {"name": "sp", "group": "analog_output", "index": 2, "scale": 0.1},
    ])
    _, close = command_body(dev.points[0], 2)
    _, trip = command_body(dev.points[0], 1)
    assert close[5] == o.TCC_CLOSE | o.PULSE_ON and trip[5] == o.TCC_TRIP | o.PULSE_ON
    g, ao = command_body(dev.points[1], 12.5)  # raw 125 → g41v1 int32
    assert g == 41 and ao[:2] == bytes((41, 1)) and o.parse_objects(ao, True).headers[0].objects[0].value == 125
    _, ao = command_body(dev.points[1], 0.05)  # raw 0.5 → g41v3 float
    assert ao[1] == 3


def test_unknown_object_reports_where_and_keeps_what_came_before() -> None:
    ev = o.hdr_prefixed(32, 7, [(1, o.encode(32, 7, o.Obj(1, 2.5, o.ONLINE, 123)))])
    res = o.parse_objects(ev + bytes((99, 9, 0x07, 2, 0, 0)), True, base=4)
    assert len(res.headers) == 1 and res.headers[0].objects[0].value == 2.5 and res.headers[0].objects[0].time_ms == 123
    assert res.error and "g99v9" in res.error and f"offset {4 + len(ev)}" in res.error


def test_known_but_unused_objects_do_not_truncate() -> None:
    body = o.hdr_range(21, 1, 0, 1, bytes(10)) + o.hdr_range(110, 4, 0, 0, b"abcd") + o.hdr_range(30, 5, 7, 7, o.encode(30, 5, o.Obj(7, 1.5)))
    res = o.parse_objects(body, True)
    assert res.error is None and [h.group for h in res.headers] == [21, 110, 30]
    assert res.headers[2].objects[0].index == 7 and res.headers[2].objects[0].value == 1.5


def test_flag_mapping_both_ways() -> None:
    assert to_quality("analog", o.ONLINE) == 0
    assert to_quality("analog", 0) == int(Q.INVALID)
    assert to_quality("analog", o.ONLINE | o.COMM_LOST) == int(Q.INVALID | Q.FAILURE | Q.OLD_DATA)
    assert to_quality("analog", o.ONLINE | o.REMOTE_FORCED) == int(Q.SUBSTITUTED)
    assert to_quality("analog", o.ONLINE | o.OVER_RANGE) == int(Q.OVERFLOW | Q.OUT_OF_RANGE)
    assert to_quality("analog", o.ONLINE | o.REFERENCE_ERR) == int(Q.BAD_REFERENCE)
    assert to_quality("binary", o.ONLINE | o.CHATTER_FILTER) == int(Q.OSCILLATORY)
    assert to_quality("binary", o.ONLINE | o.RESTART) == int(Q.QUESTIONABLE)
    assert to_quality("counter", o.ONLINE | 0x20) == 0  # ROLLOVER is not over-range
    for kind, q in [("analog", Q.OVERFLOW | Q.OUT_OF_RANGE), ("binary", Q.OSCILLATORY), ("analog", Q.INVALID | Q.FAILURE | Q.OLD_DATA),
                    ("analog", Q.BAD_REFERENCE), ("binary", Q.SUBSTITUTED), ("binary", Q.QUESTIONABLE)]:
        assert to_quality(kind, from_quality(kind, int(q))) == int(q), (kind, q)


def test_frame_decoder_resyncs_and_counts() -> None:
    from gateway.protocols.dnp3.link import LinkChannel

    ch = LinkChannel.__new__(LinkChannel)
    ch.is_master, ch.local, ch.remote, ch.stats = True, 1, 10, LinkStats()
    frame = ch._frame(4, True, bytes(range(40)))
    broken = bytearray(frame)
    broken[30] ^= 1
    stats = LinkStats()
    dec = FrameDecoder(stats)
    out = dec.feed(b"\xff\x00" + bytes(broken) + frame[:7])
    out += dec.feed(frame[7:])
    assert [f.data for f in out] == [bytes(range(40))]
    assert stats.bad_data_crc == 1 and stats.frames_in == 1 and stats.discarded_bytes >= 2


def test_config_and_update_errors_name_the_place_and_the_fix() -> None:
    import pytest

    from devices.dnp3.outstation import Dnp3Outstation

    with pytest.raises(ValueError, match=r"point 'P' asks for event variation 9 of group 32; use one of \[1, 2, 3, 4, 5, 6, 7, 8\]"):
        Dnp3Outstation(device([{"name": "P", "group": "analog", "index": 0, "variation": 9}]))
    os_ = Dnp3Outstation(device([{"name": "P", "group": "analog", "index": 0}]))
    with pytest.raises(ValueError, match=r"no DNP3 point named 'X'; known points: P"):
        os_.update("X", 1.0, 0, 0.0)
    with pytest.raises(ValueError, match=r"point 'P' \(analog\) needs a number, got 'abc'"):
        os_.update("P", "abc", 0, 0.0)
