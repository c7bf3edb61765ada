"""Malformed frames and fragments, to our outstation and to our master: logged, counted,
the association survives (or is reset cleanly), never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import struct

from gateway.protocols.dnp3 import objects as o
from gateway.protocols.dnp3.link import LinkChannel
from tests.dnp3.conftest import outstation, source
from tests.dnp3.sites import device

POINTS = [
    {"name": "P", "group": "analog", "index": 0},
    {"name": "relay", "group": "binary_output", "index": 0},
]


@contextlib.asynccontextmanager
async def raw_master(port: int):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    ch = LinkChannel(r, w, local=1, remote=10, is_master=True)
    try:
        yield ch
    finally:
        await ch.close()


async def response(ch: LinkChannel, timeout: float = 2.0) -> bytes:
    while True:
        async with asyncio.timeout(timeout):
            frag = await ch.recv()
        if frag[1] == o.RESPONSE:
            return frag
        ch.send(bytes((o.FIR | o.FIN | o.UNS | (frag[0] & 0x0F), o.CONFIRM)))  # confirm the null unsolicited


def iin(frag: bytes) -> int:
    return frag[2] | frag[3] << 8


async def integrity_ok(ch: LinkChannel, seq: int) -> None:
    ch.send(o.request(seq, o.READ, o.class_reads((0,))))
    frag = await response(ch)
    res = o.parse_objects(frag[4:], True)
    assert res.error is None and any(h.group == 30 for h in res.headers), frag.hex()


async def test_outstation_counts_bad_frames_and_keeps_serving() -> None:
    async with outstation(device(POINTS)) as os_, raw_master(os_.port) as ch:
        os_.update("P", 5.0, 0, 1_700_000_000)
        good = ch._frame(4, True, bytes([0xC0]) + o.request(0, o.READ, o.class_reads((0,))))
        bad_crc = bytearray(good)
        bad_crc[12] ^= 0xFF  # inside the first data block
        ch.writer.write(bytes(bad_crc))
        bad_len = bytearray(b"\x05\x64\x03\xc4\x0a\x00\x01\x00")  # LENGTH 3 < 5, with a valid header CRC
        from dnp3.core.crc import compute_crc

        bad_len += struct.pack("<H", compute_crc(bytes(bad_len)))
        ch.writer.write(bytes(bad_len) + b"\x00garbage\x05")
        await integrity_ok(ch, 1)
        st = os_.stats["link"]
        assert st["bad_data_crc"] == 1 and st["bad_length"] == 1 and os_.stats["malformed_frames"] >= 2
        assert st["discarded_bytes"] > 0

        # transport: a middle segment with no first one, then a fragment cut short
        ch.writer.write(ch._frame(4, True, bytes([0x05]) + b"\x01\x02"))  # no FIR, no FIN
        await integrity_ok(ch, 2)
        assert os_.stats["link"]["bad_segments"] == 1

        # application: truncated object header → IIN2.2, unknown function → IIN2.0
        ch.send(bytes((o.FIR | o.FIN | 3, o.READ, 30, 0, 0x01, 0x00)))  # range field cut off
        frag = await response(ch)
        assert iin(frag) & o.IIN_PARAMETER_ERROR and os_.stats["malformed_requests"] == 1
        ch.send(bytes((o.FIR | o.FIN | 4, 0x55)))
        frag = await response(ch)
        assert iin(frag) & o.IIN_NO_FUNC_CODE and os_.stats["unknown_function"] == 1
        ch.send(o.request(5, o.READ, o.hdr_all(99, 1)))  # an object nobody has
        frag = await response(ch)
        assert iin(frag) & o.IIN_OBJECT_UNKNOWN
        # a CROB cut in the middle: refused as malformed, nothing operated
        body = o.hdr_prefixed(12, 1, [(0, o.encode(12, 1, o.Obj(0, crob=(o.LATCH_ON, 1, 0, 0))))])
        ch.send(o.request(6, o.DIRECT_OPERATE, body[:-4]))
        frag = await response(ch)
        assert iin(frag) & o.IIN_PARAMETER_ERROR and os_.stats["commands"] == 0
        ch.writer.write(b"\x05\x64" + bytes(300))  # noise that looks like a start
        await integrity_ok(ch, 7)


async def test_master_survives_malformed_input() -> None:
    async with outstation(device(POINTS)) as os_, source(device(POINTS), os_.port) as (src, got):
        for _ in range(150):
            if src.connected and src.stats["integrity_polls"] and src.iin & 0xF0 == 0 and os_._session:
                break
            await asyncio.sleep(0.02)
        ch = os_._session.ch
        # bad CRC and noise on the link
        frame = bytearray(ch._frame(4, True, bytes([0xC0]) + o.response_header(0xD0, o.UNSOLICITED_RESPONSE, 0)))
        frame[-3] ^= 0x55
        ch.writer.write(bytes(frame) + b"\x01\x02\x03")
        # an unsolicited fragment: a good g32v7 event, then an object nobody knows → event kept, rest reported
        ev = o.hdr_prefixed(32, 7, [(0, o.encode(32, 7, o.Obj(0, 11.0, o.ONLINE, 1_700_000_000_500)))])
        ch.send(o.response_header(o.FIR | o.FIN | o.UNS | 9, o.UNSOLICITED_RESPONSE, 0) + ev + bytes((99, 1, 0x07, 1, 0xAA)))
        # a known-but-unused object (frozen counter g21v1) must not hide the event after it
        fz = o.hdr_range(21, 1, 0, 0, o.encode(21, 1, o.Obj(0, 5)))
        ev2 = o.hdr_prefixed(32, 7, [(0, o.encode(32, 7, o.Obj(0, 12.0, o.ONLINE, 1_700_000_001_000)))])
        ch.send(o.response_header(o.FIR | o.FIN | o.UNS | 10, o.UNSOLICITED_RESPONSE, 0) + fz + ev2)
        # truncated object at the end of a fragment
        ev3 = o.hdr_prefixed(32, 7, [(0, o.encode(32, 7, o.Obj(0, 13.0, o.ONLINE, 1_700_000_002_000)))])
        ch.send(o.response_header(o.FIR | o.FIN | o.UNS | 11, o.UNSOLICITED_RESPONSE, 0) + ev3[:-3])
        # a request (wrong direction) and a 1-octet fragment
        ch.send(o.request(0, o.READ))
        ch.send(b"\x00")
        rs = await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.value == 12.0 for r in rs), 3.0)
        vals = [(r.value, r.timestamp) for r in rs if r.key == "rtu1/P" and r.event]
        assert (11.0, 1_700_000_000.5) in vals and (12.0, 1_700_000_001.0) in vals
        assert 13.0 not in [v for v, _ in vals]
        assert src.link_stats.bad_data_crc >= 1
        assert src.stats["malformed_fragments"] == 4  # unknown object, truncated, request, 1-octet
        # the association is still alive and correct
        os_.update("P", 42.0, 0, 1_700_000_003.0)
        await got.wait_for(lambda rs: rs[-1].key == "rtu1/P" and rs[-1].value == 42.0, 3.0)
        assert src.connected and src.state.failures == 0
