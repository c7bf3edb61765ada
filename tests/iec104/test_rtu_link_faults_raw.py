"""The emulated RTU's link faults seen by hand-built APDUs (no c104 on this side): a swallowed STARTDT,
withheld acknowledgements (no S-frames, N(R) frozen, one S-frame on clear), delayed frames and a
clock jump in the CP56Time2a, checked on the wire."""

from __future__ import annotations

import struct
import time

import pytest

from devices.iec104.emulated import apply_faults
from devices.iec104.outstation import Iec104Rtu
from devices.scenario.faults import FAULT
from tests.iec104.support import STARTDT_ACT, STARTDT_CON, RawPeer, asdu, cp56, device

CA = 7
T0 = 1_790_000_000.25
GI = asdu(100, 6, CA, 0, bytes([20]))


def nr_of(frame: bytes) -> int:
    return struct.unpack_from("<H", frame, 4)[0] >> 1


@pytest.fixture
def rtu():
    r = Iec104Rtu(device())
    r.start()
    for name, v in (("P", 1234.5), ("Ia", 180.3), ("Pos", 2), ("Trip", 0), ("Tap", 5), ("E", 98765)):
        r.update(name, v, 0, T0)
    yield r
    r.stop()


def fault(rtu: Iec104Rtu, *specs: dict) -> None:
    apply_faults(rtu, [FAULT.validate_python(s) for s in specs])


def test_startdt_refused_closes_open_associations_and_never_confirms_startdt(rtu):
    old = RawPeer(rtu.port)
    old.startdt()
    fault(rtu, {"kind": "startdt_refused"})
    with pytest.raises(ConnectionError):  # the open association is dropped on injection
        old.read(5.0)
    p = RawPeer(rtu.port)
    p.send(STARTDT_ACT)
    assert p.read(1.5) is None  # no STARTDT con: the master's t1 runs out
    assert rtu.stats["link"]["startdt_withheld"] == 1
    p.close()
    fault(rtu)
    q = RawPeer(rtu.port)
    q.startdt()  # confirmed again
    q.close()


def test_ack_loss_withholds_s_frames_and_freezes_n_r_then_acknowledges_on_clear(rtu):
    p = RawPeer(rtu.port)
    p.startdt()
    fault(rtu, {"kind": "ack_loss"})
    for _ in range(3):  # three GIs: the RTU has received I-frames 0, 1, 2
        p.send_i(GI)
        frames = p.read_until(lambda f: f[2] & 1 == 0 and f[6] == 100 and f[8] == 10)
        assert all(f[2] & 0x03 != 0x01 for f in frames)  # no S-frame came through
        assert {nr_of(f) for f in frames if f[2] & 1 == 0} == {0}  # nothing acknowledged
    assert p.read(1.5) is None  # not even after the RTU's t2 (an S-frame would have come)
    assert rtu.stats["link"]["acks_withheld"] >= 3
    fault(rtu)
    ack = p.read(5.0)
    assert ack == bytes([0x68, 4, 1, 0]) + struct.pack("<H", 3 << 1)  # all three acknowledged at once
    p.close()


def test_delay_holds_every_frame_back_in_order(rtu):
    fault(rtu, {"kind": "delay", "ms": 500})
    p = RawPeer(rtu.port)
    t = time.monotonic()
    p.send(STARTDT_ACT)
    assert p.read(5.0) == STARTDT_CON
    assert time.monotonic() - t >= 0.5
    p.send_i(GI)
    frames = p.read_until(lambda f: f[2] & 1 == 0 and f[6] == 100 and f[8] == 10)
    cots = [f[8] for f in frames if f[2] & 1 == 0]
    assert cots[0] == 7 and cots[-1] == 10 and set(cots[1:-1]) == {20}  # order kept: con, answers, term
    assert rtu.stats["link"]["frames_delayed"] >= len(frames) + 1
    p.close()


def test_time_jump_shifts_the_cp56time2a_of_new_values(rtu):
    p = RawPeer(rtu.port)
    p.startdt()
    fault(rtu, {"kind": "time_jump", "seconds": -3600})
    rtu.update("P", 1300.0, 0, T0 + 10)
    f = p.read_until(lambda f: f[2] & 1 == 0 and f[6] == 36 and f[8] == 3)[-1]
    assert f[-7:] == cp56(T0 + 10 - 3600)  # an hour back on the wire
    fault(rtu)
    rtu.update("P", 1310.0, 0, T0 + 20)
    f = p.read_until(lambda f: f[2] & 1 == 0 and f[6] == 36 and f[8] == 3)[-1]
    assert f[-7:] == cp56(T0 + 20)
    p.close()
