"""The gateway's DNP3 master against a lying or failing outstation: a header that claims more objects
than it carries publishes nothing and flags the points it claimed; IIN2 error bits on a poll make the
device's values QUESTIONABLE|INCONSISTENT until a clean poll."""

from __future__ import annotations

import asyncio

from gateway.protocols.dnp3 import objects as o
from gateway.site.quality import Q
from tests.dnp3.conftest import outstation, source
from tests.dnp3.peer import device

POINTS = [{"name": "P", "group": "analog", "index": 0}, {"name": "Q", "group": "analog", "index": 5}]
FLAGGED = int(Q.QUESTIONABLE | Q.INCONSISTENT)


async def _ready(src, os_, got) -> None:  # noqa: ANN001
    await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.value == 10.0 and r.quality == 0 for r in rs), 10)
    for _ in range(250):
        if src.connected and os_._session and src.iin & 0xF0 == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("master did not settle")


async def test_header_claiming_more_objects_than_it_carries_publishes_nothing_and_flags() -> None:
    dev = device(POINTS)
    async with outstation(dev) as os_:
        os_.update("P", 10.0, 0, 1_700_000_000)
        os_.update("Q", 20.0, 0, 1_700_000_000)
        async with source(dev, os_.port) as (src, got):
            await _ready(src, os_, got)
            n0 = len(got.items)
            lie = o.hdr_range(30, 1, 0, 999, o.encode(30, 1, o.Obj(0, 777, o.ONLINE)))  # 1000 claimed, 1 carried
            os_._session.ch.send(o.response_header(o.FIR | o.FIN | o.UNS | 9, o.UNSOLICITED_RESPONSE, 0) + lie)
            rs = await got.wait_for(lambda rs: {r.key for r in rs[n0:] if r.quality == FLAGGED} >= {"rtu1/P", "rtu1/Q"}, 5)
            new = rs[n0:]
            assert all(r.value != 777 for r in new)  # nothing from the lying header
            assert {(r.key, r.value) for r in new if r.quality == FLAGGED} == {("rtu1/P", 10.0), ("rtu1/Q", 20.0)}
            assert all(r.quality != 0 for r in new)
            assert src.stats["short_headers"] == 1
            # a range that does not cover Q flags only P
            n1 = len(got.items)
            lie = o.hdr_range(30, 1, 0, 3, o.encode(30, 1, o.Obj(0, 778, o.ONLINE)))
            os_._session.ch.send(o.response_header(o.FIR | o.FIN | o.UNS | 10, o.UNSOLICITED_RESPONSE, 0) + lie)
            rs = await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.quality == FLAGGED for r in rs[n1:]), 5)
            assert not any(r.key == "rtu1/Q" for r in rs[n1:]) and src.stats["short_headers"] == 2


async def test_iin2_errors_on_a_poll_flag_values_until_a_clean_poll() -> None:
    dev = device(POINTS, event_poll_interval="200ms", unsolicited=False)
    async with outstation(dev) as os_:
        os_.update("P", 10.0, 0, 1_700_000_000)
        os_.update("Q", 20.0, 0, 1_700_000_000)
        async with source(dev, os_.port) as (src, got):
            await _ready(src, os_, got)
            honest = os_.iin
            os_.iin = lambda: honest() | o.IIN_OBJECT_UNKNOWN  # this outstation now fails part of every READ
            n0 = len(got.items)
            await got.wait_for(lambda rs: {r.key for r in rs[n0:] if r.quality == FLAGGED} >= {"rtu1/P", "rtu1/Q"}, 10)
            os_.update("P", 11.0, 0, 1_700_000_010)
            rs = await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.value == 11.0 for r in rs[n0:]), 10)
            assert [r.quality for r in rs[n0:] if r.key == "rtu1/P" and r.value == 11.0] == [FLAGGED]
            assert src.stats["read_errors_seen"] == 1
            os_.iin = honest
            n1 = len(got.items)
            await got.wait_for(lambda rs: {r.key for r in rs[n1:] if r.quality == 0} >= {"rtu1/P", "rtu1/Q"}, 10)
            assert src.stats["read_errors_seen"] == 1


async def test_master_drops_frames_from_a_wrong_source_address() -> None:
    from dnp3.datalink.control import ControlByte
    from dnp3.datalink.frame import DataLinkFrame

    dev = device(POINTS)
    async with outstation(dev) as os_:
        os_.update("P", 10.0, 0, 1_700_000_000)
        async with source(dev, os_.port) as (src, got):
            await _ready(src, os_, got)
            n0 = len(got.items)
            ev = o.hdr_prefixed(32, 7, [(0, o.encode(32, 7, o.Obj(0, 555.0, o.ONLINE, 1_700_000_001_000)))])
            frag = o.response_header(o.FIR | o.FIN | o.UNS | 12, o.UNSOLICITED_RESPONSE, 0) + ev
            ctrl = ControlByte(dir_from_master=False, prm=True, fcb=False, fcv=False, function_code=4)
            rogue = DataLinkFrame.build(destination=1, source=99, control=ctrl, user_data=bytes([0xC0]) + frag).to_bytes()
            os_._session.ch.writer.write(rogue)  # a station that is not our outstation, on the same stream
            for _ in range(100):
                if src.link_stats.wrong_source:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            assert src.link_stats.wrong_source == 1
            assert not any(r.value == 555.0 for r in got.items[n0:])
            os_.update("P", 12.0, 0, 1_700_000_002)  # the real outstation still gets through
            await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.value == 12.0 for r in rs[n0:]), 10)
