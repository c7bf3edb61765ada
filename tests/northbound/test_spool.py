"""The SQLite spool on its own: order, restart, bounds and their drop counts."""

from __future__ import annotations

import sqlite3
import time

import pytest

from gateway.northbound.spool import Spool, SpoolError


def _drain(sp: Spool) -> list[int]:
    out = []
    while (item := sp.take()) is not None:
        out.append(item[0])
        sp.done(item[0])
    return out


def test_live_values_pass_in_order_and_leave_nothing(tmp_path):
    sp = Spool(tmp_path / "s.db", batch=10)
    for seq in range(1, 101):
        sp.append(seq, "analog", "t", b"%d" % seq)
    assert _drain(sp) == list(range(1, 101))
    sp.flush()
    assert len(sp) == 0
    assert sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM spool").fetchone()[0] == 0


def test_backlog_beyond_read_ahead_is_read_back_in_order(tmp_path):
    sp = Spool(tmp_path / "s.db", read_ahead=100)
    for seq in range(1, 1001):
        sp.append(seq, "analog" if seq % 3 else "event", f"t/{seq % 7}", b"x" * 10, qos=1)
    first = [sp.take()[0] for _ in range(50)]
    assert sp.rewind() == 50  # connection lost: the 50 unacknowledged go back in front
    assert _drain(sp) == list(range(1, 1001)) and first == list(range(1, 51))
    assert len(sp) == 0


def test_live_qos0_is_never_written_qos1_is_committed_before_it_leaves(tmp_path):
    sp = Spool(tmp_path / "s.db")
    sp.append(1, "analog", "t", b"a", qos=0)
    sp.append(2, "analog", "t", b"b", qos=0)
    assert sp.take()[0] == 1 and sp.committed_seq == 0  # QoS 0 leaves at once, uncommitted
    sp.append(3, "event", "t", b"c", qos=1)
    assert sp.take()[0] == 2
    assert sp.take()[0] == 3 and sp.committed_seq == 3  # QoS 1 only after the commit
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT seq FROM spool").fetchall() == [(3,)]  # the two QoS 0 values were never written
    assert sp.rewind() == 1 and sp.take()[0] == 3  # only the unacknowledged QoS 1 value is re-sent
    sp.done(3)
    sp.flush()
    assert db.execute("SELECT COUNT(*) FROM spool").fetchone() == (0,) and len(sp) == 0
    assert Spool(tmp_path / "s.db").last_seq == 3


def test_committed_values_survive_reopen_unacked_are_redelivered(tmp_path):
    sp = Spool(tmp_path / "s.db")
    for seq in range(1, 21):
        sp.append(seq, "discrete", "t", b"v%d" % seq, qos=1, retain=True)
    for _ in range(5):
        seq, _msg = sp.take()
        sp.done(seq)
    sp.take()  # taken, never acknowledged
    sp.flush()
    assert sp.committed_seq == 20
    del sp  # no close: like a crash after the commit
    again = Spool(tmp_path / "s.db")
    assert (len(again), again.last_seq) == (15, 20)
    item = again.take()
    assert item[0] == 6 and (item[1].payload, item[1].qos, item[1].retain) == (b"v6", 1, True)
    with pytest.raises(ValueError, match="not above the last spooled seq 20"):
        again.append(20, "analog", "t", b"")
    again.done(6)
    assert _drain(again) == list(range(7, 21)) and len(again) == 0
    again.close()
    # every row delivered and deleted: the seq high-water mark still survives, no seq is reused
    assert Spool(tmp_path / "s.db").last_seq == 20


def test_size_bound_drops_oldest_analog_first_and_counts(tmp_path):
    sp = Spool(tmp_path / "s.db", max_bytes=40_000, batch=10_000)
    kinds = ["analog", "discrete", "event", "accumulator"]
    for seq in range(1, 401):  # 400 values of 157 accounted bytes = 62 800 B; freed down to 90 % of the bound
        sp.append(seq, kinds[seq % 4], "gridgate/v1/gw1/x", b"p" * 100)
    sp.flush()
    # 26 800 B to free: all 100 analog (15 700 B), then the 71 oldest accumulators; discrete/events untouched
    assert dict(sp.dropped) == {"analog": 100, "accumulator": 71}
    kept = _drain(sp)
    assert len(kept) == 400 - 171 and kept == sorted(kept)
    assert [s for s in kept if s % 4 == 3] == [s for s in range(1, 401) if s % 4 == 3][71:]  # oldest went
    assert sum(1 for s in kept if s % 4 in (1, 2)) == 200  # every discrete and event kept


def test_age_bound_drops_old_values_of_every_kind(tmp_path):
    sp = Spool(tmp_path / "s.db", max_age_s=0.3)
    for seq in range(1, 11):
        sp.append(seq, "event" if seq % 2 else "analog", "t", b"")
    sp.flush()
    time.sleep(0.4)
    sp._last_age_check = 0.0
    sp.append(11, "analog", "t", b"")
    sp.flush()
    assert dict(sp.dropped) == {"analog": 5, "event": 5}
    assert _drain(sp) == [11]


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(SpoolError, match="max_bytes 10 is too small"):
        Spool(tmp_path / "s.db", max_bytes=10)
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(SpoolError, match="move the file aside"):
        Spool(tmp_path / "junk.db")
    sp = Spool(tmp_path / "s.db")
    with pytest.raises(ValueError, match="use one of analog"):
        sp.append(1, "status", "t", b"")
