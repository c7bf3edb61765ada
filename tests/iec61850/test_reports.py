"""Reports from an emulated IED (own process) into the MMS driver's Readings: value, IED time, quality."""

import asyncio
import time

import pytest

from gateway.site.quality import Q, to_cim
from gateway.southbound.iec61850 import MmsSource
from tests.iec61850.conftest import fast_backoff, running

ALL = ["P", "Q", "F", "Ia", "Va", "Pos", "E"]

QUALITIES = [
    Q.GOOD,
    Q.INVALID,
    Q.QUESTIONABLE | Q.OSCILLATORY,
    Q.QUESTIONABLE | Q.OVERFLOW | Q.OUT_OF_RANGE | Q.BAD_REFERENCE | Q.INCONSISTENT | Q.INACCURATE,
    Q.INVALID | Q.FAILURE | Q.OLD_DATA,
    Q.SUBSTITUTED | Q.TEST | Q.OPERATOR_BLOCKED,
]  # (DERIVED/DEFAULTED/SUSPECT are beyond the 13-bit MMS quality and never travel over 61850)


async def test_gi_then_reports_with_ied_time_and_quality(ied):
    dev = ied()
    src = MmsSource(dev.device, fast_backoff())
    async with running(src) as sink:
        # GI on enable: every point once, with the IED's start-up state (INVALID until written)
        await sink.wait(lambda: all(sink.of(p) for p in ALL), what="GI of all points")
        assert all(sink.of(p)[0].event is False for p in ALL)
        assert all(sink.of(p)[0].quality == Q.INVALID for p in ALL)
        assert src.connected and len(src._rcbs) == 1 and not src._polled
        for i, q in enumerate(QUALITIES):
            ts = round(time.time() - 3600 + i, 6)  # clearly the IED's time, not the receive time
            dev.update("P", (1.25 + i) * 1000.0, int(q), ts)  # engineering in: the IED stores mag.f = 1.25 + i
            r = await sink.wait(lambda: [x for x in sink.of("P") if x.timestamp == ts], what=f"report for q={q!r}")
            r = r[-1]
            assert r.quality == int(q), f"{r.quality:#x} != {int(q):#x}"
            assert r.value == (1.25 + i) * 1000.0  # scale 1000 undone by the IED, applied by the gateway
            assert r.event is True and r.address == "F1PROT/MMXU1.TotW.mag.f"
        cim = to_cim(sink.of("P")[-1].quality)
        assert cim == {"validity": "GOOD", "source": "SUBSTITUTED", "test": True, "operatorBlocked": True}


async def test_wye_dbpos_and_counter_attributes(ied):
    dev = ied()
    src = MmsSource(dev.device, fast_backoff())
    async with running(src) as sink:
        await sink.wait(lambda: all(sink.of(p) for p in ALL), what="GI")
        t0 = round(time.time(), 6)
        dev.update("Ia", 412.5, 0, t0)
        dev.update("Va", 6350.25, 0, t0 + 0.001)
        dev.update("Pos", 1, 0, t0 + 0.002)
        dev.update("E", 12_345_678_901, 0, t0 + 0.003)
        dev.update("F", 49.97, 0, t0 + 0.004)
        await sink.wait(lambda: all(sink.of(p)[-1].timestamp >= t0 for p in ("Ia", "Va", "Pos", "E", "F")), what="updates")
        last = {p: sink.of(p)[-1] for p in ("Ia", "Va", "Pos", "E", "F")}
        assert last["Ia"].value == 412.5 and last["Ia"].timestamp == t0
        assert last["Va"].value == 6350.25 and last["Va"].timestamp == pytest.approx(t0 + 0.001, abs=1e-6)
        assert last["Pos"].value == 1 and isinstance(last["Pos"].value, int)  # double-point code "open"
        assert last["E"].value == 12_345_678_901
        assert last["F"].value == 49.97  # FLOAT32 given back as written
        assert all(r.quality == 0 and r.event for r in last.values())


async def test_polling_fallback_without_reports(ied):
    dev = ied(poll_interval=0.2, iec61850={"reports": False})
    src = MmsSource(dev.device, fast_backoff())
    async with running(src) as sink:
        await sink.wait(lambda: all(sink.of(p) for p in ALL), 20, what="first poll")
        assert not src._rcbs and len(src._polled) == 7
        ts = round(time.time() - 10, 6)
        dev.update("Q", -3.5, int(Q.QUESTIONABLE | Q.INACCURATE), ts)
        r = await sink.wait(lambda: [x for x in sink.of("Q") if x.timestamp == ts], what="polled update")
        assert r[-1].value == -3.5 and r[-1].quality == int(Q.QUESTIONABLE | Q.INACCURATE) and r[-1].event is False
        polls, t = src.stats.polls, time.monotonic()
        # keeps polling on its interval: 2 more polls (0.4 s at 0.2 s; up to 5 s for a busy CI box: it reran once)
        await sink.wait(lambda: src.stats.polls >= polls + 2, 5, "two more polls")
        assert time.monotonic() - t >= 0.2


async def test_buffered_entries_arrive_after_reconnect(ied):
    dev = ied()
    src = MmsSource(dev.device, fast_backoff())
    async with running(src) as sink:
        await sink.wait(lambda: all(sink.of(p) for p in ALL), what="GI")
        dev.update("P", 500.0, 0, round(time.time(), 6))
        await sink.wait(lambda: src.stats.entry_ids, what="an EntryID")
    await asyncio.sleep(0.2)
    assert dev.call(op="stats")["connections"] == 0
    # produced while the gateway is away
    base = round(time.time() - 100, 6)
    stamps = [round(base + i * 0.01, 6) for i in range(20)]
    for i, ts in enumerate(stamps):
        dev.update("P", i * 1000.0, 0, ts)
    async with running(src) as sink2:
        await sink2.wait(lambda: len([r for r in sink2.of("P") if r.event and r.timestamp in stamps]) >= 20, timeout=10, what="backlog")
        await asyncio.sleep(0.2)
        got = [r for r in sink2.of("P") if r.event and r.timestamp in stamps]
        assert [r.timestamp for r in got] == stamps  # in order, none lost, none repeated
        assert [r.value for r in got] == [i * 1000.0 for i in range(20)]
        gi = [r for r in sink2.of("P") if not r.event]  # plus the GI after resuming: the latest state
        assert gi and gi[-1].timestamp == stamps[-1] and gi[-1].value == 19000.0


async def test_unbuffered_reports_and_a_second_client(ied):
    """URCBs work too, and a second client gets the second RCB instance, not a stolen one."""
    dev = ied(iec61850={"buffered": False})
    a, b = MmsSource(dev.device, fast_backoff()), MmsSource(dev.device, fast_backoff())
    async with running(a) as sa, running(b) as sb:
        await sa.wait(lambda: a.connected and all(sa.of(p) for p in ALL), what="GI a")
        await sb.wait(lambda: b.connected and all(sb.of(p) for p in ALL), what="GI b")
        assert [r.ref for r in a._rcbs] != [r.ref for r in b._rcbs]
        assert all(".RP.urcb" in r.ref and not r.buffered for r in a._rcbs + b._rcbs)
        ts = dev.update("F", 50.05, 0)
        for s in (sa, sb):
            r = await s.wait(lambda: [x for x in s.of("F") if x.timestamp == ts], what="report on both")
            assert r[-1].value == 50.05 and r[-1].event
        assert not a.stats.entry_ids  # EntryIDs only for buffered RCBs


async def test_ied_buffer_overflow_is_counted(monkeypatch):
    """Too many entries while away: the IED drops the oldest, flags BufOvfl, and the driver counts it.

    (IED in this process: ctypes on both sides has none of the SWIG GIL hangs.)"""
    import devices.iec61850.server as server
    from devices.iec61850.server import Iec61850Ied
    from tests.iec61850.support import ied_device

    monkeypatch.setattr(server, "REPORT_BUFFER_BYTES", 4000)
    d = ied_device()
    ied = Iec61850Ied(d)
    ied.start()
    try:
        src = MmsSource(d, fast_backoff())
        async with running(src) as sink:
            await sink.wait(lambda: all(sink.of(p) for p in ALL), what="GI")
            ied.update("P", 1.0, 0, time.time())
            await sink.wait(lambda: src.stats.entry_ids, what="an EntryID")
        await asyncio.sleep(0.1)
        base = round(time.time() - 50, 6)
        stamps = [round(base + i * 0.001, 6) for i in range(300)]
        for i, ts in enumerate(stamps):
            ied.update("P", float(i), 0, ts)
        async with running(src) as sink2:
            await sink2.wait(lambda: [r for r in sink2.of("P") if r.event and r.timestamp == stamps[-1]], timeout=10,
                             what="the newest entry")
            got = [r.timestamp for r in sink2.of("P") if r.event and r.timestamp in stamps]
            assert 0 < len(got) < 300 and got == sorted(got)  # the newest survive, in order
            assert src.stats.buffer_overflows >= 1
    finally:
        ied.stop()


async def test_rcb_instances_let_each_client_own_one():
    """brcb_instances: 3 → three clients each own a buffered RCB of the data set; a fourth finds none free
    and polls instead of stealing one; urcb_instances: 0 → no unbuffered RCB served at all."""
    from devices.iec61850.server import Iec61850Ied
    from gateway.protocols.iec61850.libiec import ACSI_CLASS_BRCB, ACSI_CLASS_URCB
    from gateway.southbound.iec61850.connection import MmsConnection
    from tests.iec61850.support import ied_device

    d = ied_device(poll_interval=0.3, iec61850={"brcb_instances": 3, "urcb_instances": 0})
    ied = Iec61850Ied(d)
    ied.start()
    try:
        conn = MmsConnection(d.host, d.port, 2.0)
        conn.connect()
        try:
            assert sorted(conn.ln_directory("F1PROT/LLN0", ACSI_CLASS_BRCB)) == ["brcb101", "brcb102", "brcb103"]
            assert conn.ln_directory("F1PROT/LLN0", ACSI_CLASS_URCB) == []
        finally:
            conn.close()
        srcs = [MmsSource(d, fast_backoff()) for _ in range(4)]
        async with running(srcs[0]) as s0, running(srcs[1]) as s1, running(srcs[2]) as s2:
            for s, sink in zip(srcs, (s0, s1, s2)):
                await sink.wait(lambda: s.connected and all(sink.of(p) for p in ALL), what="GI")
            owned = sorted(r.ref for s in srcs[:3] for r in s._rcbs)
            assert owned == [f"F1PROT/LLN0.BR.brcb10{i}" for i in (1, 2, 3)]
            async with running(srcs[3]) as s3:
                await s3.wait(lambda: srcs[3].connected and all(s3.of(p) for p in ALL), what="first poll of the 4th")
                assert not srcs[3]._rcbs and len(srcs[3]._polled) == 7
                ts = round(time.time() - 5, 6)
                ied.update("F", 50.5, 0, ts)
                for sink in (s0, s1, s2, s3):
                    r = await sink.wait(lambda: [x for x in sink.of("F") if x.timestamp == ts], what="F on every client")
                    assert r[-1].value == 50.5
                assert all(r[-1].event for r in (s0.of("F"), s1.of("F"), s2.of("F")))
    finally:
        ied.stop()


def test_rcb_instances_are_refused_with_an_scl_model():
    from pydantic import ValidationError

    from tests.iec61850.support import ied_device

    with pytest.raises(ValidationError, match="brcb_instances/urcb_instances shape the generated model"):
        ied_device(iec61850={"scl": "x.cid", "brcb_instances": 4})
    with pytest.raises(ValidationError, match="less than or equal to 16"):
        ied_device(iec61850={"brcb_instances": 17})


@pytest.mark.parametrize("tick_ms", [0, 1])
async def test_receive_thread_libiec61850s_or_ours(ied, tick_ms: int):
    """receive_tick_ms 0: libiec61850's own receive thread; 1 (default): ours, which is joined on close."""
    import threading

    dev = ied(iec61850={"receive_tick_ms": tick_ms})
    src = MmsSource(dev.device, fast_backoff())
    async with running(src) as sink:
        await sink.wait(lambda: src.connected and all(sink.of(p) for p in ALL), what="GI")
        ours = [t for t in threading.enumerate() if t.name.startswith("mms-rx-")]
        assert len(ours) == (1 if tick_ms else 0)
        ts = dev.update("F", 49.5, 0)
        r = await sink.wait(lambda: [x for x in sink.of("F") if x.timestamp == ts], what="report")
        assert r[-1].value == 49.5 and r[-1].event
    await asyncio.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("mms-rx-") and t.is_alive()]
