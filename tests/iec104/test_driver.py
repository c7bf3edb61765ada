"""The gateway's controlling station against c104's *server* (set up here point by point, not our
emulated RTU): GI on connect, quality descriptor and CP56Time2a mapping, spontaneous data, counter
interrogation, clock sync, comms loss → INVALID, reconnect + GI, and every command outcome."""

# no `from __future__ import annotations`: c104 checks callback annotations as real classes

import datetime as dt
import struct
import threading
import time

import c104
import pytest

from gateway.pipeline import Backoff
from gateway.site.quality import COMMS_LOST, Q
from gateway.southbound.iec104 import Driver, Iec104CommandResult
from tests.iec104.support import device
from tests.support.readings import running

T0 = 1_790_000_000.5


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


class Peer:
    """c104's server holding the points of tests.iec104.support.device() with hand-set information."""

    def __init__(self, port: int, refuse: bool = False, stall: float = 0.0) -> None:
        self.port = port
        self.stall = stall
        self.commands: list[tuple[int, object, bool]] = []
        self.refuse = refuse
        self.lock = threading.Lock()
        self.server = c104.Server(ip="127.0.0.1", port=port, tick_rate_ms=50, select_timeout_ms=5000)
        st = self.server.add_station(common_address=7)
        self.p = st.add_point(io_address=100, type=c104.Type.M_ME_TF_1)
        self.ia = st.add_point(io_address=101, type=c104.Type.M_ME_NB_1)
        self.pos = st.add_point(io_address=200, type=c104.Type.M_DP_TB_1)
        self.trip = st.add_point(io_address=201, type=c104.Type.M_SP_TB_1)
        self.tap = st.add_point(io_address=300, type=c104.Type.M_ST_TB_1)
        self.e = st.add_point(io_address=400, type=c104.Type.M_IT_TB_1)
        self.p.info = c104.ShortInfo(actual=1234.5, quality=c104.Quality.NonTopical, recorded_at=utc(T0))
        self.ia.info = c104.ScaledInfo(actual=c104.Int16(1803), quality=c104.Quality.Overflow)
        self.pos.info = c104.DoubleInfo(state=c104.Double.ON, quality=c104.Quality.Substituted, recorded_at=utc(T0 + 1))
        self.trip.info = c104.SingleInfo(on=False, quality=c104.Quality.Blocked | c104.Quality.Invalid, recorded_at=utc(T0 + 2))
        self.tap.info = c104.StepInfo(c104.Int7(5), False, c104.Quality(), utc(T0 + 3))
        self.e.info = c104.BinaryCounterInfo(98765, c104.UInt5(1), c104.BinaryCounterQuality(), utc(T0 + 4))
        self.dc = st.add_point(io_address=1200, type=c104.Type.C_DC_NA_1, command_mode=c104.CommandMode.SELECT_AND_EXECUTE)
        self.sc = st.add_point(io_address=1201, type=c104.Type.C_SC_NA_1)
        self.rc = st.add_point(io_address=1300, type=c104.Type.C_RC_NA_1)
        for cp in (self.dc, self.sc, self.rc):
            cp.on_receive(callable=self.on_command)
        self.closing = False
        self.server.on_connect(callable=self.on_connect)
        self.server.start()

    def on_connect(self, server: c104.Server, ip: str) -> bool:
        return not self.closing

    def on_command(self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage) -> c104.ResponseState:
        with self.lock:
            self.commands.append((point.io_address, point.value, message.is_select_command))
        time.sleep(self.stall)  # a stalled RTU: no confirmation within the gateway's timeout
        return c104.ResponseState.FAILURE if self.refuse else c104.ResponseState.SUCCESS

    def stop(self) -> None:
        """Like the emulated RTU: refuse, drop the connections, then stop (c104's stop can crash mid-connect)."""
        from devices.netguard import abort_connections

        self.closing = True
        deadline = time.monotonic() + 2
        while self.server.is_running and self.server.open_connection_count and time.monotonic() < deadline:
            abort_connections("127.0.0.1", self.port)
            time.sleep(0.05)
        self.server.stop()


@pytest.fixture
def dev():
    return device(timeout=1.0, iec104={"common_address": 7, "gi_interval": 600})


@pytest.fixture
def peer(dev):
    p = Peer(dev.port)
    yield p
    p.stop()


def fast(dev) -> Driver:
    return Driver(dev, backoff=Backoff(initial=0.2, maximum=1.0))


async def ready(sink, src, *points: str) -> None:
    """Connected and the GI's values of ``points`` in (not the None of a failed first attempt)."""
    await sink.wait(lambda: src.connected and all((x := sink.latest(n)) and x.value is not None for n in points),
                    what=f"GI values of {points}")


async def test_gi_on_connect_maps_values_quality_descriptors_and_cp56_time(dev, peer):
    src = fast(dev)
    async with running(src) as sink:
        await ready(sink, src, "P", "Ia", "Pos", "Trip", "Tap", "E")
        await sink.wait(lambda: src.status_counters()["counter_interrogations"] == 1, what="CI done")
        p, ia, pos, trip, tap, e = (sink.latest(n) for n in ("P", "Ia", "Pos", "Trip", "Tap", "E"))
        assert (p.value, p.quality, p.timestamp, p.event) == (1234.5, int(Q.QUESTIONABLE | Q.OLD_DATA), T0, False)
        assert p.address == "ioa:100"
        assert ia.value == pytest.approx(180.3) and ia.quality == int(Q.QUESTIONABLE | Q.OVERFLOW)
        assert (pos.value, pos.quality, pos.timestamp) == (2, int(Q.SUBSTITUTED), T0 + 1)
        assert (trip.value, trip.quality, trip.timestamp) == (False, int(Q.INVALID | Q.OPERATOR_BLOCKED), T0 + 2)
        assert (tap.value, tap.quality, tap.timestamp) == (5, 0, T0 + 3)
        assert (e.value, e.timestamp) == (98765, T0 + 4)
        c = src.status_counters()
        assert c["general_interrogations"] == 1 and c["counter_interrogations"] == 1
        await sink.wait(lambda: src.status_counters()["clock_syncs"] == 1, what="clock sync")
        assert src.connected and src.state.polls == 1


async def test_spontaneous_data_arrives_as_events_with_the_rtu_time(dev, peer):
    src = fast(dev)
    async with running(src) as sink:
        await ready(sink, src, "Pos")
        peer.pos.info = c104.DoubleInfo(state=c104.Double.OFF, quality=c104.Quality(), recorded_at=utc(T0 + 100.25))
        assert peer.pos.transmit(cause=c104.Cot.SPONTANEOUS)
        r = await sink.wait(lambda: (x := sink.latest("Pos")) and x.event and x, what="the spontaneous Pos")
        assert (r.value, r.quality, r.timestamp) == (1, 0, T0 + 100.25)
        assert src.status_counters()["spontaneous"] == 1


async def test_comms_loss_marks_invalid_and_reconnect_repeats_the_gi(dev, peer):
    src = fast(dev)
    async with running(src) as sink:
        await sink.wait(lambda: (x := sink.latest("P")) and x.value == 1234.5 and src.connected, what="GI")
        peer.stop()
        lost = await sink.wait(lambda: (x := sink.latest("P")) and x.quality & Q.FAILURE and x, 30, "P marked lost")
        assert lost.value == 1234.5 and lost.timestamp == T0
        assert lost.quality == int(COMMS_LOST | Q.OLD_DATA)  # NT's QUESTIONABLE becomes INVALID
        assert lost.quality & 0x3 == int(Q.INVALID)
        assert not src.connected
        again = Peer(dev.port)
        try:
            again.p.info = c104.ShortInfo(actual=999.0, quality=c104.Quality(), recorded_at=utc(T0 + 50))
            r = await sink.wait(lambda: (x := sink.latest("P")) and x.value == 999.0 and x, 30, "GI after reconnect")
            assert r.quality == 0 and r.timestamp == T0 + 50
            await sink.wait(lambda: src.status_counters()["general_interrogations"] >= 2, what="the GI counted")
            assert src.state.reconnects >= 1
        finally:
            again.stop()


async def test_sbo_double_command_is_accepted_and_terminated(dev, peer):
    src = fast(dev)
    async with running(src) as sink:
        await ready(sink, src, "Pos")
        res = await src.operate("Pos", 1, "sbo")
        assert isinstance(res, Iec104CommandResult)
        assert (res.ok, res.outcome, res.command_type, res.cot, res.negative, res.terminated) == (True, "accepted", "C_DC_NA_1", 7, False, True)
        assert [c for c in peer.commands if not c[2]] == [(1200, c104.Double.OFF, False)]


async def test_a_refused_direct_command_is_a_device_error_with_the_negative_confirmation(dev):
    peer = Peer(dev.port, refuse=True)
    try:
        src = fast(dev)
        async with running(src) as sink:
            await ready(sink, src, "Trip")
            res = await src.operate("Trip", 1, "direct")
            assert (res.ok, res.outcome, res.cot, res.negative) == (False, "device_error", 7, True)
            assert "negative activation confirmation" in res.reason
            assert peer.commands == [(1201, True, False)]
    finally:
        peer.stop()


async def test_a_command_to_an_ioa_the_rtu_lacks_is_refused_with_cot_47(dev, peer):
    d = dev.model_copy(deep=True)
    d.points[4].command_ioa = 1399  # the peer has C_RC_NA_1 at 1300 only
    src = fast(d)
    async with running(src) as sink:
        await ready(sink, src, "Tap")
        res = await src.operate("Tap", 6, "direct")
        assert (res.outcome, res.cot) == ("device_error", 47), res
        assert "unknown information object address" in res.reason


async def test_regulating_step_goes_the_right_way_and_bad_requests_are_refused_before_sending(dev, peer):
    src = fast(dev)
    async with running(src) as sink:
        await ready(sink, src, "Tap")
        res = await src.operate("Tap", 4, "direct")
        assert res.outcome == "accepted", res
        assert peer.commands[-1] == (1300, c104.Step.LOWER, False)
        same = await src.operate("Tap", 5, "direct")
        assert same.outcome == "refused" and "already at 5" in same.reason
        bad = await src.operate("Pos", 0, "sbo")  # intermediate is not a command
        assert bad.outcome == "refused" and "OFF (1) or ON (2)" in bad.reason
        energy = await src.operate("E", 1, "direct")
        assert energy.outcome == "refused" and "not controllable" in energy.reason
        assert (await src.operate("nope", 1)).outcome == "refused"


async def test_operate_without_a_connection_is_not_connected(dev):
    src = fast(dev)
    res = await src.operate("Pos", 1, "sbo")
    assert (res.ok, res.outcome) == (False, "not_connected")


async def test_the_general_interrogation_repeats_every_gi_interval(peer):
    dev = device(timeout=1.0, iec104={"common_address": 7, "gi_interval": 0.5, "clock_sync": False}, port=peer.port)
    src = fast(dev)
    async with running(src) as sink:
        await ready(sink, src, "P")
        await sink.wait(lambda: src.status_counters()["general_interrogations"] >= 3, what="three GIs")
        assert src.status_counters()["gi_failed"] == 0 and src.status_counters()["clock_syncs"] == 0
        assert len([r for r in sink.of("P") if r.value == 1234.5]) >= 3


async def test_bad_frames_from_the_rtu_are_counted_and_never_crash_the_driver(dev):
    """A raw server (no c104): STARTDT con, GI con, then an unknown type id (well framed) and a frame whose
    length octet lies; the driver counts the first, survives the second (lib60870 drops or closes), and
    comms recover to a good GI from the next connection."""
    import asyncio as aio

    from tests.iec104.support import STARTDT_ACT, STARTDT_CON, asdu, i_frame

    bad_sent = False

    async def serve(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        nonlocal bad_sent
        ns = 0
        try:
            while True:
                head = await reader.readexactly(2)
                frame = head + await reader.readexactly(head[1])
                if frame == STARTDT_ACT:
                    writer.write(STARTDT_CON)
                elif frame[2] & 1 == 0 and frame[6] == 100:  # GI: confirm, one value, terminate
                    for body in (asdu(100, 7, 7, 0, b"\x14"), asdu(13, 20, 7, 100, struct.pack("<f", 42.0) + b"\x00"),
                                 asdu(100, 10, 7, 0, b"\x14")):
                        writer.write(i_frame(ns, 0, body))
                        ns += 1
                    if not bad_sent:  # on the first association that gets as far as a GI
                        bad_sent = True
                        writer.write(i_frame(ns, 0, asdu(99, 3, 7, 100, b"\x00\x00")))  # unknown type id
                        ns += 1
                        writer.write(bytes.fromhex("680e") + i_frame(ns, 0, asdu(13, 3, 7, 100, b"\x00"))[2:])  # length lies
                        ns += 1
                await writer.drain()
        except (aio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await aio.start_server(serve, "127.0.0.1", dev.port)
    try:
        d = dev.model_copy(update={"points": [dev.points[0].model_copy(update={"type": "M_ME_NC_1"})]})
        src = fast(d)
        async with running(src) as sink:
            await sink.wait(lambda: (x := sink.latest("P")) and x.value == 42.0 and x.quality == 0, what="the GI value")
            await sink.wait(lambda: src.status_counters()["malformed"].get("unknown_type", 0) >= 1, what="bad type counted")
            await sink.wait(lambda: src.connected and (x := sink.latest("P")) and x.value == 42.0 and x.quality == 0,
                            20, "good after the bad frames")
    finally:
        server.close()
        await server.wait_closed()


async def test_apci_parameters_from_the_site_file_reach_both_stacks(peer):
    from devices.iec104.outstation import Iec104Rtu

    opts = {"common_address": 7, "t0": 12, "t1": 9, "t2": 4, "t3": 30, "k": 20, "w": 10}
    dev = device(timeout=1.0, iec104=opts, port=peer.port)
    src = fast(dev)
    async with running(src) as sink:
        await ready(sink, src, "P")
        pp = src._con.protocol_parameters
        assert (pp.connection_timeout, pp.message_timeout, pp.confirm_interval, pp.keep_alive_interval,
                pp.send_window_size, pp.receive_window_size) == (12000, 9000, 4000, 30000, 20, 10)
    rtu = Iec104Rtu(device(iec104=opts))
    sp = rtu.server.protocol_parameters
    assert (sp.message_timeout, sp.confirm_interval, sp.keep_alive_interval, sp.send_window_size, sp.receive_window_size) == \
        (9000, 4000, 30000, 20, 10)


async def test_a_command_the_rtu_does_not_confirm_in_time_is_timed_out(dev):
    peer = Peer(dev.port, stall=2.5)
    try:
        src = fast(dev)  # timeout 1 s
        async with running(src) as sink:
            await ready(sink, src, "Trip")
            res = await src.operate("Trip", 1, "direct")
            assert (res.ok, res.outcome, res.cot) == (False, "timed_out", None), res
            assert "no activation confirmation" in res.reason
            assert peer.commands == [(1201, True, False)]  # it did arrive: the effect is unknown, hence timed_out
    finally:
        peer.stop()


def test_the_execute_is_resent_only_when_a_confirmed_select_got_no_execute_and_no_answer(dev):
    """The decision behind the `executes_resent` gap fill (c104's client sometimes drops the execute),
    on synthetic confirmations: resend only after a positive select, with no execute sent or answered."""
    from gateway.protocols.iec104.adapter import Apdu, Confirmations

    src = Driver(dev.model_copy(update={"timeout": 0.2}))
    conf = Confirmations()

    def case(events: list[Apdu], sent: list[tuple[int, int, bool]]) -> bool:
        pending = conf.expect(46, 1200)
        pending.events.extend(events)
        src._sent_commands[:] = sent
        try:
            return src._select_confirmed_without_execute(pending, 46, 1200)
        finally:
            conf.done(pending)

    sel_con = Apdu("I", 46, 7, False, 7, 1200, True)
    exe_con = Apdu("I", 46, 7, False, 7, 1200, False)
    neg = Apdu("I", 46, 7, True, 7, 1200, False)
    assert case([sel_con], [(46, 1200, True)]) is True  # the c104 gap: select confirmed, no execute left
    assert case([sel_con], [(46, 1200, True), (46, 1200, False)]) is False  # the execute did leave
    assert case([sel_con, exe_con], [(46, 1200, True)]) is False  # answered (the send hook lagged)
    assert case([sel_con, neg], [(46, 1200, True)]) is False  # refused
    assert case([], [(46, 1200, True)]) is False  # no select confirmation: nothing to execute
    assert case([Apdu("I", 46, 7, True, 7, 1200, True)], [(46, 1200, True)]) is False  # select refused
