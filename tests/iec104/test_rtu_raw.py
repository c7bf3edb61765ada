"""The emulated RTU against hand-built APDUs (no c104 on this side): STARTDT, GI, spontaneous data,
COT 44–47 refusals, the k window, clock sync and malformed frames, checked byte for byte."""

from __future__ import annotations

import struct
import time

import pytest

from devices.iec104.outstation import Iec104Rtu
from gateway.site.quality import Q
from tests.iec104.support import RawPeer, asdu, asdu_of, cp56, device, s_frame

CA = 7
T0 = 1_790_000_000.25  # a fixed source time, so the CP56Time2a octets are known


@pytest.fixture
def rtu():
    r = Iec104Rtu(device())
    r.start()
    r.update("P", 1234.5, 0, T0)
    r.update("Ia", 180.3, int(Q.QUESTIONABLE | Q.OLD_DATA), T0)  # NT
    r.update("Pos", 2, int(Q.INVALID), T0)  # IV
    r.update("Trip", 0, int(Q.OPERATOR_BLOCKED), T0)  # BL
    r.update("Tap", 5, int(Q.SUBSTITUTED), T0)  # SB
    r.update("E", 98765, 0, T0)
    yield r
    r.stop()


@pytest.fixture
def peer(rtu):
    p = RawPeer(rtu.port)
    p.startdt()
    yield p
    p.close()


def _wait(pred, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_general_interrogation_is_confirmed_answered_and_terminated_byte_for_byte(rtu, peer):
    peer.send_i(asdu(100, 6, CA, 0, bytes([20])))
    frames = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 100 and f[8] == 10)
    body = [asdu_of(f) for f in frames if f[2] & 1 == 0]
    assert body[0] == asdu(100, 7, CA, 0, bytes([20]))  # ACT_CON
    assert body[-1] == asdu(100, 10, CA, 0, bytes([20]))  # ACT_TERM
    t = cp56(T0)
    expected = {
        100: asdu(36, 20, CA, 100, struct.pack("<f", 1234.5) + bytes([0]) + t),
        101: asdu(11, 20, CA, 101, struct.pack("<h", 1803) + bytes([0x40])),  # NT; scaled 180.3 / 0.1
        200: asdu(31, 20, CA, 200, bytes([0x80 | 2]) + t),  # IV | ON
        201: asdu(30, 20, CA, 201, bytes([0x10 | 0]) + t),  # BL | OFF
        300: asdu(32, 20, CA, 300, bytes([5, 0x20]) + t),  # position 5, SB
    }
    answers = {struct.unpack("<I", b[6:9] + b"\0")[0]: b for b in body[1:-1]}
    for ioa, want in expected.items():
        got = answers[ioa]
        assert got[:1] == want[:1] and got[2:] == want[2:], f"IOA {ioa}: {got.hex(' ')} != {want.hex(' ')}"
        assert got[1] & 0x7F == 1  # one object (SQ bit may be set for a single object)
    assert 400 not in answers  # integrated totals answer the counter interrogation, not the GI


def test_counter_interrogation_answers_integrated_totals_with_cot_37(rtu, peer):
    peer.send_i(asdu(101, 6, CA, 0, bytes([5])))
    frames = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 101 and f[8] == 10)
    body = [asdu_of(f) for f in frames if f[2] & 1 == 0]
    assert body[0] == asdu(101, 7, CA, 0, bytes([5]))
    (it,) = [b for b in body if b[0] == 37]
    assert it[2] == 37 and it[6:9] == b"\x90\x01\x00"  # COT 37, IOA 400
    assert struct.unpack("<i", it[9:13])[0] == 98765 and it[13] & 0x80 == 0 and it[14:] == cp56(T0)


def test_a_change_is_sent_spontaneously_and_a_change_inside_the_deadband_is_not(peer, rtu):
    t = T0 + 60.5
    rtu.update("P", 1500.0, int(Q.INVALID), t)
    f = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 36)[-1]
    assert asdu_of(f) == asdu(36, 3, CA, 100, struct.pack("<f", 1500.0) + bytes([0x80]) + cp56(t))
    rtu.update("Ia", 180.3, int(Q.QUESTIONABLE | Q.OLD_DATA), t)  # unchanged: nothing
    rtu.update("Pos", 1, 0, t)
    f = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 31)[-1]
    assert asdu_of(f) == asdu(31, 3, CA, 200, bytes([1]) + cp56(t))
    assert rtu.stats["spontaneous_sent"] == 2


def test_deadband_suppresses_small_changes():
    r = Iec104Rtu(device(points=[{"name": "P", "ioa": 5, "type": "M_ME_NC_1", "deadband": 10,
                                  "measurement": {"equipment": "S1/F1/FDR", "type": "ThreePhaseActivePower"}}]))
    r.start()
    try:
        r.update("P", 100.0, 0, T0)
        p = RawPeer(r.port)
        p.startdt()
        r.update("P", 105.0, 0, T0 + 1)  # inside the deadband
        assert p.read(1.0) is None
        r.update("P", 111.0, 0, T0 + 2)
        f = p.read_until(lambda f: f[2] & 1 == 0 and f[6] == 13)[-1]
        assert asdu_of(f) == asdu(13, 3, CA, 5, struct.pack("<f", 111.0) + bytes([0]))
        p.close()
    finally:
        r.stop()


@pytest.mark.parametrize(
    ("body", "cot"),
    [
        (asdu(45, 6, CA, 999, bytes([1])), 47),  # unknown IOA
        (asdu(45, 6, CA + 1, 1201, bytes([1])), 46),  # unknown common address
        (asdu(48, 6, CA, 1201, struct.pack("<h", 1) + bytes([0])), 44),  # C_SE_NA_1: no such command object here
    ],
    ids=["unknown-ioa", "unknown-ca", "unknown-type"],
)
def test_unknown_type_cause_address_and_ioa_are_refused_with_cot_44_to_47(peer, rtu, body, cot):
    peer.send_i(body)
    frames = peer.read_until(lambda f: f[2] & 1 == 0 and f[8] & 0x3F == cot)
    reply = asdu_of(frames[-1])
    assert reply[0] == body[0] and reply[6:] == body[6:]
    assert reply[4:6] == body[4:6]
    _wait(lambda: sum(rtu.unexpected.values()) >= 1, 5, "the refusal counted")


def test_a_command_with_a_wrong_cause_is_not_executed(peer, rtu):
    seen: list[tuple[str, float]] = []
    rtu.on_command = lambda point, value: seen.append((point, value)) or True
    peer.send_i(asdu(45, 11, CA, 1201, bytes([0x01])))  # COT 11: return information, not an activation
    assert peer.read(1.5) is None
    _wait(lambda: rtu.unexpected.get("UNKNOWN_COT", 0) == 1, 5, "the wrong cause counted")
    assert seen == [] and rtu.stats["commands"] == 0


def test_a_direct_single_command_is_confirmed_and_reaches_the_firmware(rtu, peer):
    seen: list[tuple[str, float]] = []
    rtu.on_command = lambda point, value: seen.append((point, value)) or True
    peer.send_i(asdu(45, 6, CA, 1201, bytes([0x01])))  # SCS=1, S/E=0
    f = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 45)[-1]
    assert asdu_of(f) == asdu(45, 7, CA, 1201, bytes([0x01]))
    assert seen == [("Trip", 1)]


def test_a_double_command_select_then_execute_is_confirmed_twice_and_terminated(rtu, peer):
    seen: list[tuple[str, float]] = []
    rtu.on_command = lambda point, value: seen.append((point, value)) or True
    peer.send_i(asdu(46, 6, CA, 1200, bytes([0x81])))  # select OFF (DCS=1, S/E=1)
    f = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 46)[-1]
    assert asdu_of(f) == asdu(46, 7, CA, 1200, bytes([0x81]))
    assert seen == []  # a select operates nothing
    peer.send_i(asdu(46, 6, CA, 1200, bytes([0x01])))  # execute OFF
    frames = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 46 and f[8] == 10)
    body = [asdu_of(f) for f in frames if f[2] & 1 == 0 and f[6] == 46]
    assert body == [asdu(46, 7, CA, 1200, bytes([0x01])), asdu(46, 10, CA, 1200, bytes([0x81]))]
    assert seen == [("Pos", 1)]


def test_a_refused_direct_command_gets_a_negative_confirmation(rtu, peer):
    from devices.iec104.faults import RtuFaults

    rtu.faults = RtuFaults(refuse_commands=True)
    peer.send_i(asdu(45, 6, CA, 1201, bytes([0x01])))
    f = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 45)[-1]
    assert asdu_of(f) == asdu(45, 0x40 | 7, CA, 1201, bytes([0x01]))  # P/N=1
    assert rtu.stats["commands_refused"] == 1


def test_clock_sync_is_confirmed(rtu, peer):
    t = time.time() + 3600
    peer.send_i(asdu(103, 6, CA, 0, cp56(t) + b""))
    f = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 103)[-1]
    assert f[8] == 7
    assert rtu.stats["clock_syncs"] == 1 and 3500 < rtu.clock_offset < 3700


def test_the_k_window_stalls_without_acknowledgements_and_resumes_after_one(rtu, peer):
    for i in range(30):
        rtu.update("P", 2000.0 + i, 0, T0 + i)
    got = []
    while (f := peer.read(1.5)) is not None:
        got.append(f)
    assert len(got) == 12, [g.hex(" ") for g in got]  # k = 12 unacknowledged I-frames, then silence
    peer.send(s_frame(peer.nr))
    more = peer.read(5.0)
    assert more is not None and more[6] == 36


def test_an_unknown_type_id_is_counted_as_malformed(rtu, peer):
    peer.send(bytes.fromhex("680e00000000") + asdu(99, 6, CA, 0, bytes([20])))
    _wait(lambda: rtu.malformed.get("unknown_type", 0) == 1, 5, "the frame counted")
    assert rtu.stats["commands"] == 0


@pytest.mark.parametrize(
    "frame",
    [
        bytes.fromhex("680e00000000") + asdu(100, 6, CA, 0, bytes([20]))[:-2],
        bytes.fromhex("680a00000000") + asdu(100, 6, CA, 0, bytes([20]))[:4],
        bytes.fromhex("ff0400000000"),
    ],
    ids=["length-byte-wrong", "truncated-asdu", "bad-start-octet"],
)
def test_a_broken_frame_does_not_operate_or_crash_the_rtu(rtu, frame):
    """lib60870 drops these below c104's raw hook (they cannot be counted on this side); what counts is
    that nothing is executed and the RTU keeps serving."""
    p = RawPeer(rtu.port)
    p.startdt()
    p.send(frame)
    try:
        reply = p.read(1.0)  # lib60870 either ignores the frame or closes the connection
    except ConnectionError:
        reply = None
    assert reply is None or reply[2] & 1 == 1  # at most an S/U frame: no confirmation of anything
    p.close()
    assert rtu.stats["commands"] == 0
    q = RawPeer(rtu.port)  # a fresh association is served normally
    q.startdt()
    q.send_i(asdu(100, 6, CA, 0, bytes([20])))
    q.read_until(lambda f: f[2] & 1 == 0 and f[6] == 100 and f[8] == 10)
    q.close()


def test_a_point_with_a_cycle_is_also_sent_periodically_with_cot_1():
    r = Iec104Rtu(device(points=[{"name": "F", "ioa": 9, "type": "M_ME_NC_1", "cyclic": "300ms",
                                  "measurement": {"equipment": "S1/F1/FDR", "type": "Frequency"}}]))
    r.start()
    try:
        r.update("F", 50.01, 0, T0)
        p = RawPeer(r.port)
        p.startdt()
        frames = [f for f in (p.read(2.0) for _ in range(3)) if f is not None]
        periodic = [asdu_of(f) for f in frames if f[2] & 1 == 0 and f[8] == 1]
        assert len(periodic) >= 2, [f.hex(" ") for f in frames]
        want = asdu(13, 1, CA, 9, struct.pack("<f", 50.01) + bytes([0]))
        assert periodic[0][:1] + periodic[0][2:] == want[:1] + want[2:]  # (SQ may be set for one object)
        p.close()
    finally:
        r.stop()


def test_a_refused_select_before_execute_command_gets_a_negative_execute_confirmation(rtu, peer):
    """c104 confirms the select itself; the refusal comes with the execute (P/N=1). c104 then also sends
    an ACT_TERM, which a controlling station must ignore after a negative confirmation."""
    from devices.iec104.faults import RtuFaults

    seen: list[tuple[str, float]] = []
    rtu.on_command = lambda point, value: seen.append((point, value)) or True
    rtu.faults = RtuFaults(refuse_commands=True)
    peer.send_i(asdu(46, 6, CA, 1200, bytes([0x81])))  # select OFF
    f = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 46)[-1]
    assert asdu_of(f) == asdu(46, 7, CA, 1200, bytes([0x81]))
    peer.send_i(asdu(46, 6, CA, 1200, bytes([0x01])))  # execute OFF
    f = peer.read_until(lambda f: f[2] & 1 == 0 and f[6] == 46)[-1]
    assert asdu_of(f) == asdu(46, 0x40 | 7, CA, 1200, bytes([0x01]))
    assert seen == [] and rtu.stats["commands_refused"] == 1
