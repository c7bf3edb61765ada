"""The spool on its own: order, restart, bounds and their drop counts, crash safety, migration."""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from array import array
from pathlib import Path

import pytest

from gateway.northbound.message import KIND_CODE as KIND_CODES
from gateway.northbound.message import ValueMessage
from gateway.northbound.outbox import MemoryOutbox
from gateway.northbound.segment_log import _BODY, RECORD_OVERHEAD, inspect
from gateway.northbound.spool import Spool, SpoolError
from tests.northbound.spool_writer import payload

ROOT = Path(__file__).resolve().parents[2]


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
    assert len(sp) == 0 and len(sp) == 0 and sp.oldest_age() == 0.0
    assert inspect(tmp_path / "s.db") == (0, 0)


def test_backlog_beyond_read_ahead_is_read_back_in_order(tmp_path):
    sp = Spool(tmp_path / "s.db", read_ahead=100)
    for seq in range(1, 1001):
        sp.append(seq, "analog" if seq % 3 else "event", f"t/{seq % 7}", b"x" * 10, qos=1)
    first = [sp.take()[0] for _ in range(50)]
    assert sp.rewind() == 50  # connection lost: the 50 unacknowledged go back in front
    assert _drain(sp) == list(range(1, 1001)) and first == list(range(1, 51))
    assert len(sp) == 0


def _drain_n(sp: Spool, n: int) -> list[int]:
    out = []
    for _ in range(n):
        seq = sp.take()[0]  # type: ignore[index]
        out.append(seq)
        sp.done(seq)
    return out


def _values(first: int | None, n: int, qos: int = 0, kind: str = "analog") -> list[ValueMessage]:
    return [ValueMessage(f"t/{i % 3}", b"v%d" % i, qos, False, None, 0.0, kind, None if first is None else first + i)
            for i in range(n)]


def test_a_batch_is_spooled_in_one_call_with_its_seqs_and_spool_time(tmp_path):
    sp = Spool(tmp_path / "s.db")
    assert sp.put_many(_values(1, 5), 1000.0) == 5
    batch = _values(None, 3, kind="event")  # no seq: the spool's next ones, set on the messages
    assert sp.put_many(batch, 1001.5) == 3
    assert [m.seq for m in batch] == [6, 7, 8] and {m.born for m in batch} == {1001.5} and sp.last_seq == 8
    with pytest.raises(ValueError, match="seq 8 is not above the last spooled seq 8"):
        sp.put_many(_values(8, 2), 1002.0)
    with pytest.raises(ValueError, match="kind 'status': use one of analog"):
        sp.put_many(_values(9, 1, kind="status"), 1002.0)
    assert len(sp) == 8 and sp.last_seq == 8  # a refused batch spools nothing
    sp.flush()
    sp.close()
    again = Spool(tmp_path / "s.db")  # spooled-at survives in the file (the age bound and the queued age use it)
    assert again.oldest_born() == 1000.0
    got = [again.take()[1] for _ in range(8)]
    assert [(m.seq, m.kind, m.born, m.payload) for m in got][4:6] == [(5, "analog", 1000.0, b"v4"), (6, "event", 1001.5, b"v0")]
    assert again.take() is None


def test_a_burst_beyond_read_ahead_is_handed_out_from_memory_until_it_is_written(tmp_path):
    sp = Spool(tmp_path / "s.db", read_ahead=10)
    sp.put_many(_values(1, 25), time.time())  # QoS 0, nothing flushed yet
    assert [sp.take()[0] for _ in range(25)] == list(range(1, 26))  # 15 beyond the window, from memory
    sp.flush()
    assert not list((tmp_path / "s.db").glob("*.seg")) and len(sp) == 0  # all left live: none was ever written
    sp.put_many(_values(26, 25, qos=1), time.time())
    first = sp.take()  # QoS 1 leaves only once committed: all 25 are written now, 15 of them beyond the window
    assert first[0] == 26 and sp.committed_seq == 50 and inspect(tmp_path / "s.db")[0] == 25
    rest = _drain(sp)  # the 15 follow in order (kept in memory at the write: test_values_written_beyond_...)
    sp.done(26)
    assert rest == list(range(27, 51)) and len(sp) == 0
    sp.flush()
    assert inspect(tmp_path / "s.db") == (0, 0)


def test_the_memory_queue_takes_a_batch_up_to_its_bound():
    box = MemoryOutbox(5)
    batch = _values(1, 8)
    assert box.put_many(batch, 50.0) == 5 and len(box) == 5  # the newest 3 refused (the publisher counts them)
    assert box.oldest_born() == 50.0 and [box.take()[1].seq for _ in range(5)] == [1, 2, 3, 4, 5]
    assert box.put_many(batch[5:], 60.0) == 0 and box.rewind() == 5


def test_live_qos0_is_never_written_qos1_is_committed_before_it_leaves(tmp_path):
    sp = Spool(tmp_path / "s.db")
    sp.append(1, "analog", "t", b"a", qos=0)
    sp.append(2, "analog", "t", b"b", qos=0)
    assert sp.take()[0] == 1 and sp.committed_seq == 0  # QoS 0 leaves at once, uncommitted
    sp.append(3, "event", "t", b"c", qos=1)
    assert sp.take()[0] == 2
    assert sp.take()[0] == 3 and sp.committed_seq == 3  # QoS 1 only after the commit
    assert inspect(tmp_path / "s.db") == (1, RECORD_OVERHEAD + 2)  # the two QoS 0 values were never written
    assert sp.rewind() == 1 and sp.take()[0] == 3  # only the unacknowledged QoS 1 value is re-sent
    sp.done(3)
    sp.flush()
    assert inspect(tmp_path / "s.db") == (0, 0) and len(sp) == 0
    sp.close()
    assert Spool(tmp_path / "s.db").last_seq == 3


def test_committed_values_survive_reopen_unacked_are_redelivered(tmp_path):
    sp = Spool(tmp_path / "s.db")
    for seq in range(1, 21):
        sp.append(seq, "discrete", "t", b"v%d" % seq, qos=1, retain=True, expiry=seq)
    for _ in range(5):
        seq, _msg = sp.take()
        sp.done(seq)
    sp.take()  # taken, never acknowledged
    sp.flush()
    assert sp.committed_seq == 20
    sp._log.close()  # no Spool.close(): like a crash after the flush (only the lock is let go)
    again = Spool(tmp_path / "s.db")
    assert (len(again), again.last_seq) == (15, 20)
    item = again.take()
    assert item[0] == 6 and (item[1].payload, item[1].qos, item[1].retain, item[1].expiry) == (b"v6", 1, True, 6)
    with pytest.raises(ValueError, match="not above the last spooled seq 20"):
        again.append(20, "analog", "t", b"")
    again.done(6)
    assert _drain(again) == list(range(7, 21)) and len(again) == 0
    again.close()
    # every value delivered and acknowledged: the seq high-water mark still survives, no seq is reused
    assert Spool(tmp_path / "s.db").last_seq == 20


def test_out_of_order_acknowledgements_are_kept_across_a_reopen(tmp_path):
    sp = Spool(tmp_path / "s.db")
    for seq in range(1, 101):
        sp.append(seq, "event", "t", b"%d" % seq, qos=1)
    taken = [sp.take()[0] for _ in range(100)]
    for seq in reversed(taken):  # PUBACKs in any order: every even one, newest first
        if seq % 2 == 0:
            sp.done(seq)
    sp.flush()
    assert len(sp) == 50
    sp._log.close()
    again = Spool(tmp_path / "s.db")
    assert _drain(again) == list(range(1, 101, 2))
    again.flush()
    assert inspect(tmp_path / "s.db") == (0, 0)


def test_out_of_order_pubacks_across_batch_boundaries_then_a_restart_replays_exactly_the_unacked(tmp_path):
    sp = Spool(tmp_path / "s.db", batch=50, read_ahead=40)  # a flush every 50 acks; 200 values: beyond the window
    for k in range(1, 201, 25):
        sp.put_many(_values(k, 25, qos=1, kind="event"), time.time())
    taken = [sp.take()[0] for _ in range(200)]
    assert taken == list(range(1, 201))
    acked = random.Random(18).sample(taken, 130)  # PUBACKs in any order, across the flushes at 50 and 100
    for seq in acked[:100]:
        sp.done(seq)
    assert len(sp) == 100 and sp._done == []  # two flushes wrote their ranges
    for seq in acked[100:]:
        sp.done(seq)
    sp._log.close()  # a crash: the last 30 acknowledgements were never written, so they are sent again
    again = Spool(tmp_path / "s.db")
    assert _drain(again) == sorted(set(range(1, 201)) - set(acked[:100]))
    again.close()

    sp = Spool(tmp_path / "t.db", batch=50, read_ahead=40)
    for k in range(1, 201, 25):
        sp.put_many(_values(k, 25, qos=1, kind="event"), time.time())
    assert [sp.take()[0] for _ in range(200)] == list(range(1, 201))
    for seq in acked:
        sp.done(seq)
    sp.flush()
    sp._log.close()
    again = Spool(tmp_path / "t.db")
    assert len(again) == 70 and _drain(again) == sorted(set(range(1, 201)) - set(acked))


def test_values_written_beyond_the_window_stay_in_memory_and_leave_in_seq_order(tmp_path):
    sp = Spool(tmp_path / "s.db", read_ahead=10, batch=20)
    reads: list[int] = []
    read = sp._log.read
    sp._log.read = lambda after, limit: reads.append(after) or read(after, limit)  # type: ignore[method-assign]
    sp.put_many(_values(1, 25, qos=1), time.time())  # 15 beyond the window; the batch is written at once
    assert sp.committed_seq == 25 and len(sp._mem) == 25  # ... and the 15 kept (room: read_ahead + batch)
    assert _drain(sp) == list(range(1, 26)) and reads == []

    sp = Spool(tmp_path / "t.db", read_ahead=10, batch=20)
    read2 = sp._log.read
    sp._log.read = lambda after, limit: reads.append(after) or read2(after, limit)  # type: ignore[method-assign]
    for k in range(1, 41, 10):  # 1-10 in the window; 11-20 and 21-30 kept at their writes; 31-40 find no room
        sp.put_many(_values(k, 10, qos=1), time.time())
    assert len(sp._mem) == 30 and sp.committed_seq == 40
    first = _drain_n(sp, 15)
    sp.put_many(_values(41, 20, qos=1), time.time())  # room again, but 31-40 wait in the file, before these
    assert len(sp._mem) == 15 and sp.committed_seq == 60
    assert first + _drain(sp) == list(range(1, 61)) and reads == [30, 40, 50]  # 31-60 read back, in order
    sp.flush()
    assert inspect(tmp_path / "t.db") == (0, 0) and len(sp) == 0


def test_pop_qos0_is_take_and_done_of_a_qos0_head(tmp_path):
    sp = Spool(tmp_path / "s.db")
    vals = _values(1, 4) + _values(5, 2, qos=1) + _values(7, 2)
    sp.put_many(vals, time.time())
    assert sp.pop_qos0() is vals[0] and sp.pop_qos0() is vals[1] and sp.committed_seq == 0  # live: never written
    sp.flush()  # 3..8 written
    assert sp.pop_qos0() is vals[2] and sp.pop_qos0() is vals[3]  # committed: acknowledged at the next flush
    assert sp.pop_qos0() is None and len(sp) == 4  # a QoS 1 head stays for take(): it needs a PUBACK
    assert sp.take()[0] == 5 and sp.take()[0] == 6 and sp.pop_qos0() is vals[6] and len(sp) == 3
    sp.flush()
    assert inspect(tmp_path / "s.db")[0] == 3  # 5, 6 (in flight) and 8
    sp._log.close()  # a crash
    again = Spool(tmp_path / "s.db")
    assert _drain(again) == [5, 6, 8] and again.last_seq == 8
    again.close()


def test_records_carry_zlibs_crc32_so_spools_of_earlier_versions_read_alike(tmp_path):
    sp = Spool(tmp_path / "s.db")
    sp.put_many(_values(1, 30, qos=1), time.time())
    sp.flush()
    assert [sp.take()[0] for _ in range(3)] == [1, 2, 3]
    sp.done(2)
    sp.flush()
    sp.close()
    data = b"".join(p.read_bytes() for p in sorted((tmp_path / "s.db").glob("*.seg")))
    pos, seqs = 0, []
    while pos < len(data):  # each record: crc32(body), len(body), body — zlib's CRC-32, as it always was
        crc, ln = struct.unpack_from("<II", data, pos)
        assert zlib.crc32(data[pos + 8:pos + 8 + ln]) == crc
        seqs.append(_BODY.unpack_from(data, pos + 8)[0])
        pos += 8 + ln
    assert seqs == list(range(1, 31))
    acks = (tmp_path / "s.db" / "acks.log").read_bytes()
    assert acks and len(acks) % 21 == 0
    for i in range(0, len(acks), 21):
        assert zlib.crc32(acks[i + 4:i + 21]) == struct.unpack_from("<I", acks, i)[0]
    # and a record checksummed by zlib (a spool of an earlier version) is read
    body = _BODY.pack(31, 1000.0, -1, 3, 1, 0, 3) + b"t/x" + b"old"
    with open(tmp_path / "s.db" / "0000000099.seg", "wb") as f:
        f.write(struct.pack("<II", zlib.crc32(body), len(body)) + body)
    again = Spool(tmp_path / "s.db")
    assert _drain(again)[-2:] == [30, 31] and again.last_seq == 31


def test_the_c_record_encoder_writes_the_python_loops_bytes():
    """The C encoder (Stop 25) against the Python loop it replaces: every field, both ways of each, a
    non-ASCII topic, an empty payload; a payload that is not bytes goes through the Python loop."""
    from gateway.northbound import segment_log

    records = pytest.importorskip("gateway.northbound._records", reason="the C encoder was not built")
    assert records.crc_impl() == "zlib-ng"  # zlib-ng is a dependency: its CRC-32, found at import
    kinds = ("analog", "accumulator", "discrete", "event")
    rows = [ValueMessage(f"gw/meas/p{s % 7}", payload(s) * (1 + s % 4), s % 2, bool(s % 3),
                         None if s % 5 else s * 1000, 1.7e9 + s / 7, kinds[s % 4], s) for s in range(1, 500)]
    rows += [ValueMessage("gw/ünïcode/tópic", b"", 1, True, 0, 0.0, "event", 2**40),
             ValueMessage("t", b"x" * 70000, 0, False, -1, -5.5, "analog", 2**40 + 1)]
    data, lens, kind_codes, seqs, times = segment_log.encode(rows)
    assert segment_log._c_encode is not None
    assert (data, lens, kind_codes, seqs, times) == segment_log.encode_py(rows)
    assert len(data) == sum(lens) and list(kind_codes) == [KIND_CODES[m.kind] for m in rows]
    assert list(array("q", seqs)) == [m.seq for m in rows] and list(array("d", times)) == [m.born for m in rows]
    pos = 0
    for m, ln in zip(rows, lens):  # and each record checks with zlib's CRC-32
        crc, n = struct.unpack_from("<II", data, pos)
        assert n == ln - 8 and zlib.crc32(data[pos + 8:pos + ln]) == crc
        assert _BODY.unpack_from(data, pos + 8)[0] == m.seq
        pos += ln
    odd = [ValueMessage("t", bytearray(b"ab"), 0, False, None, 1.0, "analog", 9)]
    assert segment_log.encode(odd) == segment_log.encode_py(odd)  # not bytes: the Python loop
    assert segment_log.encode([]) == (b"", [], bytearray(), b"", b"")
    with pytest.raises(KeyError):
        segment_log.encode([ValueMessage("t", b"", 0, False, None, 1.0, "nonsense", 1)])


def test_size_bound_drops_oldest_analog_first_and_counts(tmp_path):
    sp = Spool(tmp_path / "s.db", max_bytes=40_000, batch=10_000)
    kinds = ["analog", "discrete", "event", "accumulator"]
    for seq in range(1, 401):  # 400 records of 150 B = 60 000 B; freed down to 90 % of the bound
        sp.append(seq, kinds[seq % 4], "gridgate/v1/gw1/x", b"p" * 100)
    sp.flush()
    assert RECORD_OVERHEAD + 17 + 100 == 150
    # 24 000 B to free: all 100 analog (15 000 B), then the 60 oldest accumulators; discrete/events untouched
    assert dict(sp.dropped) == {"analog": 100, "accumulator": 60}
    assert inspect(tmp_path / "s.db") == (240, 36_000)  # the drops are acknowledged in the file too
    kept = _drain(sp)
    assert len(kept) == 400 - 160 and kept == sorted(kept)
    assert [s for s in kept if s % 4 == 3] == [s for s in range(1, 401) if s % 4 == 3][60:]  # oldest went
    assert sum(1 for s in kept if s % 4 in (1, 2)) == 200  # every discrete and event kept


def test_age_bound_drops_old_values_of_every_kind(tmp_path):
    sp = Spool(tmp_path / "s.db", max_age_s=0.3)
    for seq in range(1, 11):
        sp.append(seq, "event" if seq % 2 else "analog", "t", b"")
    sp.flush()
    assert len(sp) == 10 and 0.0 <= sp.oldest_age() < 60
    time.sleep(0.4)
    assert sp.oldest_age() >= 0.4
    sp._last_age_check = 0.0
    sp.append(11, "analog", "t", b"")
    sp.flush()
    assert dict(sp.dropped) == {"analog": 5, "event": 5}
    assert _drain(sp) == [11]


def test_compaction_deletes_and_rewrites_segments_of_delivered_values(tmp_path):
    sp = Spool(tmp_path / "s.db", max_bytes=1 << 20, batch=500)  # 128 KiB segments
    for seq in range(1, 6001):
        sp.append(seq, "analog" if seq % 10 else "event", "t", b"x" * 100, qos=1)
    sp.flush()
    segs = lambda: sorted((tmp_path / "s.db").glob("*.seg"))  # noqa: E731
    assert len(segs()) >= 5
    while (item := sp.take()) is not None:
        if item[0] % 10:
            sp.done(item[0])  # every event stays unacknowledged: segments of 10 % live values
    for _ in range(len(segs())):
        sp.flush()  # one sparse segment rewritten per flush
    live = 600 * (RECORD_OVERHEAD + 1 + 100)
    assert sp._bytes == live
    assert sum(p.stat().st_size for p in segs()) <= 2 * live + 2 * (128 << 10) < 6000 * (RECORD_OVERHEAD + 101)
    sp.close()
    again = Spool(tmp_path / "s.db")
    assert _drain(again) == list(range(10, 6001, 10))
    again.flush()
    again.close()
    assert segs() == [] or inspect(tmp_path / "s.db") == (0, 0)


def test_a_torn_tail_is_cut_off_and_what_was_written_survives(tmp_path, caplog):
    sp = Spool(tmp_path / "s.db")
    for seq in range(1, 11):
        sp.append(seq, "event", "t", b"v%d" % seq, qos=1)
    sp.flush()
    sp.take()
    sp.done(1)
    sp.flush()
    sp.close()
    seg = sorted((tmp_path / "s.db").glob("*.seg"))[-1]
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(b"\x01\x02\x03\x04\xf4\x01\x00\x00" + b"half a record")  # a length running past the end
    with open(tmp_path / "s.db" / "acks.log", "ab") as f:
        f.write(b"\x00" * 7)
    with caplog.at_level(logging.WARNING):
        again = Spool(tmp_path / "s.db")
    assert "truncated there" in caplog.text and seg.stat().st_size == size
    assert _drain(again) == list(range(2, 11))


def test_kill_9_mid_append_loses_nothing_unacknowledged_and_brings_back_nothing_acknowledged(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for rnd in range(3):
        path = tmp_path / f"s{rnd}"
        proc = subprocess.Popen([sys.executable, "-m", "tests.northbound.spool_writer", str(path)],
                                stdout=subprocess.PIPE, env=env, cwd=ROOT)
        committed = horizon = 0
        try:
            for _ in range(40 + 15 * rnd):  # kill at a different point each round, mid-write most likely
                line = proc.stdout.readline().split()
                assert line and line[0] == b"ok", line
                committed, horizon = int(line[1]), int(line[2])
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        assert horizon > 1000
        sp = Spool(path)
        got = {}
        while (item := sp.take()) is not None:
            got[item[0]] = item[1]
        # up to the last reported flush exactly the unacknowledged values are there, each intact
        assert sorted(s for s in got if s <= committed) == [s for s in range(horizon + 1, committed + 1) if s % 3 == 0]
        for s, m in got.items():
            assert (m.payload, m.topic, m.qos, m.retain, m.expiry) == (payload(s), f"gg/{s % 5}", 1, s % 2 == 0,
                                                                        s % 7 or None), s
        assert sp.last_seq >= committed
        sp.close()


def test_a_second_process_on_one_spool_is_refused(tmp_path):
    sp = Spool(tmp_path / "s.db")
    with pytest.raises(SpoolError, match="used by another process"):
        Spool(tmp_path / "s.db")
    sp.close()
    Spool(tmp_path / "s.db").close()


def _sqlite_spool(path: Path, rows: list[tuple], last_seq: int) -> None:
    """A spool file as versions before issue 18 wrote it."""
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE spool (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, topic TEXT NOT NULL,
            payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, expiry INTEGER, t REAL NOT NULL);
        CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
    """)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("INSERT INTO meta VALUES ('last_seq', ?)", (last_seq,))
    db.executemany("INSERT INTO spool VALUES (?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()


def test_an_sqlite_spool_is_migrated_on_open(tmp_path, caplog):
    path = tmp_path / "spool.db"
    now = time.time()
    _sqlite_spool(path, [(s, s % 4, f"gg/{s}", b"p%d" % s, s % 2, s % 3 == 0, 30 if s == 7 else None, now - 5)
                         for s in range(3, 53)], last_seq=60)
    with caplog.at_level(logging.WARNING):
        sp = Spool(path)
    assert "migrated 50 undelivered value(s)" in caplog.text and "spool.db.sqlite-old" in caplog.text
    assert path.is_dir() and (tmp_path / "spool.db.sqlite-old").is_file()
    assert (len(sp), sp.last_seq) == (50, 60) and sp.oldest_age() >= 5
    got = []
    while (item := sp.take()) is not None:
        s, m = item
        got.append(s)
        assert (m.topic, m.payload, m.qos, m.retain, m.expiry) == (f"gg/{s}", b"p%d" % s, s % 2, s % 3 == 0,
                                                                   30 if s == 7 else None)
        sp.done(s)
    assert got == list(range(3, 53))
    sp.append(61, "analog", "t", b"")
    sp.close()
    assert Spool(path).last_seq == 61  # the migrated spool is the spool now


def test_an_unreadable_sqlite_spool_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "spool.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with caplog.at_level(logging.ERROR):
        sp = Spool(path)
    assert "cannot be read" in caplog.text and "moved aside as spool.db.sqlite-old" in caplog.text
    assert len(sp) == 0 and (tmp_path / "spool.db.sqlite-old").read_bytes().startswith(b"SQLite format 3")


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(SpoolError, match="max_bytes 10 is too small"):
        Spool(tmp_path / "s.db", max_bytes=10)
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(SpoolError, match="move the file aside"):
        Spool(tmp_path / "junk.db")
    sp = Spool(tmp_path / "s.db")
    with pytest.raises(ValueError, match="use one of analog"):
        sp.append(1, "status", "t", b"")
