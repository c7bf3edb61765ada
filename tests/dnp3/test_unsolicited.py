"""Unsolicited reporting of our outstation, driven byte by byte: null response first, FC 20/21 per
class, confirm before clear, retry with the same sequence until confirmed."""

from __future__ import annotations

import asyncio

from gateway.protocols.dnp3 import objects as o
from tests.dnp3.conftest import outstation
from tests.dnp3.sites import device
from tests.dnp3.test_malformed import iin, raw_master, response

POINTS = [
    {"name": "P", "group": "analog", "index": 0, "event_class": 1},
    {"name": "Q", "group": "analog", "index": 1, "event_class": 2},
]


async def next_unsol(ch, timeout: float = 1.0) -> bytes | None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                frag = await ch.recv()
                if frag[1] == o.UNSOLICITED_RESPONSE:
                    return frag
    except TimeoutError:
        return None


def confirm(ch, frag: bytes) -> None:
    ch.send(bytes((o.FIR | o.FIN | o.UNS | (frag[0] & 0x0F), o.CONFIRM)))


async def test_per_class_enable_confirm_and_retry() -> None:
    async with outstation(device(POINTS), unsol_confirm_timeout=0.2) as os_, raw_master(os_.port) as ch:
        null = await next_unsol(ch)
        assert null is not None and null[4:] == b"" and null[0] & o.CON and iin(null) & o.IIN_DEVICE_RESTART
        retry = await next_unsol(ch)  # not confirmed: the same fragment again
        assert retry == null and os_.stats["unsol_retried"] >= 1
        confirm(ch, null)
        ch.send(o.request(0, o.ENABLE_UNSOLICITED, o.hdr_all(60, 2)))  # class 1 only
        assert iin(await response(ch)) & 0x0F00 == 0

        os_.update("P", 1.0, 0, 1_700_000_000.0)
        os_.update("Q", 2.0, 0, 1_700_000_000.5)
        u = await next_unsol(ch)
        hs = o.parse_objects(u[4:], True).headers
        assert [(h.group, h.var, [ob.index for ob in h.objects]) for h in hs] == [(32, 7, [0])]
        assert hs[0].objects[0].time_ms == 1_700_000_000_000 and u[0] & o.CON and u[0] & o.UNS
        assert iin(u) & o.IIN_CLASS2 and not iin(u) & o.IIN_CLASS1  # Q waits in class 2
        again = await next_unsol(ch, 0.5)
        assert again == u  # unconfirmed → retried with the same sequence
        assert os_.stats["class1_confirmed"] == 0
        confirm(ch, u)
        await asyncio.sleep(0.05)
        assert os_.stats["class1_confirmed"] == 1 and os_.stats["class2_confirmed"] == 0
        assert await next_unsol(ch, 0.4) is None  # class 2 is not enabled

        ch.send(o.request(1, o.DISABLE_UNSOLICITED, o.hdr_all(60, 2)))
        await response(ch)
        os_.update("P", 3.0, 0, 1_700_000_001.0)
        assert await next_unsol(ch, 0.4) is None
        # both wait for a class poll, oldest first
        ch.send(o.request(2, o.READ, o.class_reads((1, 2, 3))))
        frag = await response(ch)
        evs = [(h.group, ob.index, ob.value) for h in o.parse_objects(frag[4:], True).headers for ob in h.objects]
        assert evs == [(32, 1, 2.0), (32, 0, 3.0)]
        assert frag[0] & o.CON
        ch.send(bytes((o.FIR | o.FIN | (frag[0] & 0x0F), o.CONFIRM)))
        await asyncio.sleep(0.05)
        st = os_.stats
        assert (st["class1_confirmed"], st["class2_confirmed"], st["events_buffered"]) == (2, 1, 0)
