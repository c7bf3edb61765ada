"""The storage under the durable spool: append-only segment files and an acknowledgement log.

Why a log and not SQLite: a flush is one ``write()`` of records built in memory (the project's
bench measured ~11x SQLite's insert rate); an acknowledgement, in any order, is a range in a
second small log, never a rewrite; a crash is recovered by reading each file up to its first
record that does not check. The price — holes left by out-of-order acknowledgements and by the
drop policy — is paid by compaction (below), off the per-value path.

A spool directory holds:

* ``<n>.seg`` — value records in seq order (n counts segments; a new one starts when the
  current one passes ``segment_bytes``). Record: ``crc32(body) u32, len(body) u32`` then the
  body ``seq i64, spooled-at f64, expiry i32 (-1 none), kind u8, qos u8, retain u8, topic
  length u16, topic, payload``.
* ``acks.log`` — ``crc32 u32, type u8, a i64, b i64``: type 1 = seqs a..b acknowledged
  (delivered or dropped), type 2 = seqs up to a are used (the high-water mark, so a restart
  never re-uses a seq a subscriber may have seen, even when every value was delivered).
* ``lock`` — an exclusive ``flock``: two processes on one spool fail closed.

Durability (``fsync``): without it every flush is written to the OS, which survives a crash of
the process (kill -9) but not of the machine; segments are fsynced when sealed and at close.
With it the segment, then the ack log, are fsynced at every flush (survives power loss).

Torn tails: a record whose length runs past the end of its file or whose CRC does not match is
where a crash (or a failed write on a full disk) cut the file; the file is truncated there on
open (logged). A write that fails is undone by truncating back to where it started, so a retry
never follows garbage; if even that fails the segment is sealed and the ack log rewritten.

Compaction (``compact``): a sealed segment with nothing live is deleted; when the segments hold
more than twice the live bytes plus two segments, the sparsest one below half live is rewritten
with only its live records (temporary file, fsync, rename) — not before, because while a backlog
drains segments empty by themselves and a rewrite would be wasted; the ack log is rewritten (high mark plus the ranges still naming a record on disk) when it passes
``acks_bytes``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate
from pathlib import Path

from gateway.northbound.message import KIND_CODE, KINDS, ValueMessage
from gateway.site.gcpause import gc_paused

try:
    # zlib-ng's CRC-32 is zlib's (the same checksums, so the same files; tests/northbound checks it) with
    # carry-less multiplication: a 330-byte record 0.28 -> 0.07 µs, ~a quarter of the record's encoding
    # and of what the spool added to a QoS 1 value (docs/performance.md, "Stop 24")
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - an install without the wheel: the same checksums, slower
    from zlib import crc32

try:
    # the records in C (same bytes; it takes zlib-ng's CRC-32 from the module above when loaded)
    from gateway.northbound._records import encode as _c_encode
except ImportError:  # pragma: no cover - built without a compiler or zlib's header: the Python loop
    _c_encode = None

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")  # crc32(body), len(body)
_BODY = struct.Struct("<qdiBBBH")  # seq, spooled-at, expiry, kind, qos, retain, topic length
_ACK = struct.Struct("<IBqq")  # crc32 of the rest, type, a, b
_ACK_BODY = struct.Struct("<Bqq")
#: bytes a record takes beyond its topic and payload
RECORD_OVERHEAD = _HEAD.size + _BODY.size
_ACK_RANGE, _ACK_HIGH = 1, 2
_KINDS = len(KINDS)

#: one value to write: its message carries seq, kind and ``born`` (written as spooled-at)
Row = ValueMessage


def ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted seqs → (first, last) runs: a batch of acknowledgements in a few records."""
    if isinstance(seqs, list) and seqs and seqs[-1] - seqs[0] == len(seqs) - 1:
        return [(seqs[0], seqs[-1])]  # the usual batch: one run (sorted, no repeats)
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


#: what ``encode`` returns: the records in one buffer, each one's length and kind code, and the seqs and
#: spooled-at times in the machine's order (``array("q")`` / ``array("d")`` bytes: the index takes them as they are)
Encoded = tuple[bytes, list[int], bytearray, bytes, bytes]


def encode(rows: list[Row]) -> Encoded:
    """Records for ``rows`` in one buffer (a flush is one write()), with what the index needs (``Encoded``).

    In C (gateway/northbound/_records.c) where it was built: 0.2-0.3 µs a 330-byte record against 0.75-1.2 for
    the Python loop below under the same load — the record's encoding was half of what the spool added
    to a live QoS 0 value, whose waiting values it must write (docs/performance.md, "Stop 25"). A row the
    C encoder does not take as it is (a payload that is not ``bytes``) goes through the Python loop.
    """
    if _c_encode is not None:
        try:
            return _c_encode(rows, KIND_CODE)  # type: ignore[no-any-return]
        except TypeError:
            pass
    return encode_py(rows)


def encode_py(rows: list[Row]) -> Encoded:
    """``encode`` in Python: the fallback without the C encoder, and its reference in the tests.

    One loop with everything bound locally: ~0.43 µs a 330-byte record here (0.68 with zlib's CRC-32,
    ~1 byte/ns). One CRC call over the concatenated body beats chaining it over head, topic and payload
    without the copy (0.48: a short CRC call costs more than a 330-byte copy); building the buffer with
    ``pack_into``/memoryview slices measured 1.6x slower than this concatenation.
    """
    parts: list[bytes] = []
    lens: list[int] = []
    kinds = bytearray()
    add, size, kind_of = parts.append, lens.append, kinds.append
    head, body, crc, code, head_size = _HEAD.pack, _BODY.pack, crc32, KIND_CODE, _HEAD.size
    for m in rows:
        topic = m.topic.encode()
        k = code[m.kind]
        expiry = m.expiry
        b = body(m.seq, m.born, -1 if expiry is None else expiry, k, m.qos, m.retain, len(topic)) + topic + m.payload
        n = len(b)
        add(head(crc(b), n))
        add(b)
        size(n + head_size)
        kind_of(k)
    return (b"".join(parts), lens, kinds, array("q", [m.seq for m in rows]).tobytes(),
            array("d", [m.born for m in rows]).tobytes())


def _ack(kind: int, a: int, b: int) -> bytes:
    body = _ACK_BODY.pack(kind, a, b)
    return struct.pack("<I", crc32(body)) + body


class _Segment:
    """One segment file and a compact index of its records (arrays: ~30 bytes a record)."""

    __slots__ = ("n", "path", "seqs", "offs", "lens", "kinds", "ts", "alive", "live", "live_bytes", "end", "fd")

    def __init__(self, n: int, path: Path) -> None:
        self.n, self.path = n, path
        self.seqs = array("q")
        self.offs = array("Q")
        self.lens = array("I")
        self.kinds = bytearray()
        self.ts = array("d")
        self.alive = bytearray()
        self.live = 0
        self.live_bytes = 0
        self.end = 0  # bytes of good records in the file
        self.fd: int | None = None

    def add(self, seq: int, off: int, ln: int, kind: int, t: float) -> None:
        self.seqs.append(seq)
        self.offs.append(off)
        self.lens.append(ln)
        self.kinds.append(kind)
        self.ts.append(t)
        self.alive.append(1)
        self.live += 1
        self.live_bytes += ln

    def extend(self, seqs: bytes, off: int, lens: list[int], kinds: bytes | bytearray, ts: bytes) -> None:
        """Index records: ``seqs``/``ts`` as the bytes of an ``array("q")``/``array("d")`` (encode builds them;
        ``frombytes`` is a copy, where ``fromlist`` of Python lists cost ~0.1 µs a record)."""
        n = len(lens)
        if not n:
            return
        self.seqs.frombytes(seqs)
        self.offs.fromlist(list(accumulate(lens[:-1], initial=off)))
        self.lens.fromlist(lens)
        self.kinds += kinds
        self.ts.frombytes(ts)
        self.alive += b"\x01" * n
        self.live += n
        self.live_bytes += sum(lens)

    def kill(self, lo: int, hi: int) -> None:
        """Mark seqs lo..hi (inclusive) dead."""
        i, j = bisect_left(self.seqs, lo), bisect_right(self.seqs, hi)
        if j - i > 1 and self.alive.count(1, i, j) == j - i:  # a run of live values: at C speed
            self.alive[i:j] = bytes(j - i)
            self.live -= j - i
            self.live_bytes -= sum(self.lens[i:j])
            return
        for k in range(i, j):
            if self.alive[k]:
                self.alive[k] = 0
                self.live -= 1
                self.live_bytes -= self.lens[k]

    def reader(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _live_run(alive: bytearray, k: int, limit: int) -> list[int]:
    """Indexes of up to ``limit`` live records from index ``k`` on, run by run of live ones."""
    idx: list[int] = []
    n = len(alive)
    while len(idx) < limit:
        k = alive.find(1, k)
        if k < 0:
            break
        end = alive.find(0, k)
        end = min(n if end < 0 else end, k + limit - len(idx))
        idx += range(k, end)
        k = end
    return idx


def _parse(data: bytes | memoryview, start: int = 0) -> Iterator[tuple[int, int, memoryview]]:
    """(offset, record length, body) of each good record; stops at the first torn or corrupt one."""
    mv = memoryview(data)
    n, pos, unpack = len(mv), start, _HEAD.unpack_from
    while pos + _HEAD.size <= n:
        crc, ln = unpack(mv, pos)
        end = pos + _HEAD.size + ln
        if ln < _BODY.size or end > n:
            return
        body = mv[pos + _HEAD.size:end]
        if crc32(body) != crc:
            return
        yield pos, _HEAD.size + ln, body
        pos = end


class SegmentLog:
    """Values by seq in segment files, acknowledgements in ``acks.log`` (module docstring)."""

    def __init__(self, directory: Path, *, segment_bytes: int = 16 << 20, fsync: bool = False,
                 acks_bytes: int = 1 << 20) -> None:
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.acks_bytes = acks_bytes
        self.last_seq = 0  # highest seq written or reserved
        self._high_written = 0
        self._segs: list[_Segment] = []
        self._firsts: list[int] = []  # first seq of each segment (for bisect)
        self._active: _Segment | None = None  # the segment appends go to
        self._wfd: int | None = None
        self._next_n = 1
        self._acks_dirty = False
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise
        self._recover()
        self._afd = os.open(directory / "acks.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._acks_size = os.fstat(self._afd).st_size

    # ------------------------------------------------------------------ open

    def _recover(self) -> None:
        files = sorted((int(p.stem), p) for p in self.dir.glob("*.seg") if p.stem.isdigit())
        top = 0
        for n, path in files:
            seg = _Segment(n, path)
            data = path.read_bytes()
            for off, ln, body in _parse(data):
                seq, t, _e, kind, _q, _r, _tl = _BODY.unpack_from(body)
                seg.end = off + ln
                if seq <= top or kind >= _KINDS:
                    continue  # a record written again after a failed write that could not be undone
                top = seq
                seg.add(seq, off, ln, kind, t)
            if seg.end < len(data):
                log.warning("spool %s: segment %s ends in %d byte(s) that do not form a whole record (a crash or a "
                            "failed write cut it); truncated there", self.dir, path.name, len(data) - seg.end)
                os.truncate(path, seg.end)
            self._next_n = n + 1
            if seg.seqs:
                self._segs.append(seg)
                self._firsts.append(seg.seqs[0])
            else:
                path.unlink()
        acks = self.dir / "acks.log"
        high = 0
        if acks.exists():
            data = acks.read_bytes()
            pos = 0
            while pos + _ACK.size <= len(data):
                crc, kind, a, b = _ACK.unpack_from(data, pos)
                if crc32(data[pos + 4:pos + _ACK.size]) != crc or kind not in (_ACK_RANGE, _ACK_HIGH):
                    break
                if kind == _ACK_HIGH:
                    high = max(high, a)
                else:
                    self._kill(a, b)
                pos += _ACK.size
            if pos < len(data):
                log.warning("spool %s: acks.log ends in %d byte(s) that do not form a whole record (a crash cut "
                            "it); truncated there — values it acknowledged may be sent again", self.dir,
                            len(data) - pos)
                os.truncate(acks, pos)
        self.last_seq = self._high_written = max(top, high)
        for seg in [s for s in self._segs if not s.live]:
            self._remove(seg)

    # ------------------------------------------------------------------ writing

    def append(self, rows: list[Row], high: int | None, acked: Iterable[int], *, probe: bool = False) -> None:
        """Write ``rows``, then acknowledge ``acked`` and raise the high mark to ``high``: all or nothing.

        ``probe`` writes the high mark even if unchanged (can we write at all?).

        Raises OSError (nothing of it counts; the files are cut back to where they were).
        """
        seg, start = None, 0
        if rows:
            data, lens, kinds, seqs, ts = encode(rows)
            seg = self._for_write(len(data))
            start = seg.end
            self._write(self._wfd, data, seg.path, start)  # type: ignore[arg-type]
        runs = ranges(sorted(acked))
        try:
            recs = [_ack(_ACK_RANGE, a, b) for a, b in runs]
            if high is not None and (high > self._high_written or probe):
                recs.append(_ack(_ACK_HIGH, high, 0))
            if recs:
                if self._acks_dirty:
                    self._rewrite_acks()
                self._write(self._afd, b"".join(recs), self.dir / "acks.log", self._acks_size)
                self._acks_size += len(recs) * _ACK.size
            if self.fsync:
                if seg is not None:
                    os.fsync(self._wfd)  # type: ignore[arg-type]
                if recs:
                    os.fsync(self._afd)
        except OSError:
            if seg is not None:
                self._undo(self._wfd, seg.path, start)  # type: ignore[arg-type]
            raise
        if seg is not None:
            self._index(seg, rows[0].seq, lens, kinds, seqs, ts, start)
        for a, b in runs:
            self._kill(a, b)
        if high is not None:
            self._high_written = max(self._high_written, high)
            self.last_seq = max(self.last_seq, high)
        if rows:
            self.last_seq = max(self.last_seq, rows[-1].seq)

    def _write(self, fd: int, data: bytes, path: Path, start: int) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            self._undo(fd, path, start)
            raise

    def _undo(self, fd: int, path: Path, start: int) -> None:
        """Cut a failed write back off; if that fails too, never append to that file again."""
        try:
            os.ftruncate(fd, start)
        except OSError:
            if fd == self._afd:
                self._acks_dirty = True  # rewritten (temporary file, rename) before the next ack
            else:
                self._seal()
            log.warning("spool %s: could not cut a failed write off %s; it is left to the torn-tail check",
                        self.dir, path.name)

    def _for_write(self, size: int) -> _Segment:
        seg = self._active
        if seg is not None and seg.end and seg.end + size > self.segment_bytes:
            self._seal()
            seg = None
        if seg is None:
            path = self.dir / f"{self._next_n:010d}.seg"
            # O_APPEND: after a failed write is cut back off, the next one lands at the new end
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            seg = _Segment(self._next_n, path)
            self._next_n += 1
            self._active, self._wfd = seg, fd
        return seg

    def _index(self, seg: _Segment, first: int, lens: list[int], kinds: bytearray, seqs: bytes, ts: bytes,
               start: int) -> None:
        if not seg.seqs:
            self._segs.append(seg)
            self._firsts.append(first)
        seg.extend(seqs, start, lens, kinds, ts)
        seg.end = start + sum(lens)

    def _seal(self) -> None:
        if self._wfd is not None:
            try:
                os.fsync(self._wfd)
            finally:
                os.close(self._wfd)
                self._wfd = None
                seg, self._active = self._active, None
                if seg is not None and not seg.seqs:
                    seg.path.unlink(missing_ok=True)

    def _kill(self, lo: int, hi: int) -> None:
        i = bisect_right(self._firsts, lo) - 1
        for seg in self._segs[max(i, 0):]:
            if seg.seqs[0] > hi:
                break
            if seg.seqs[-1] >= lo:
                seg.kill(lo, hi)

    # ------------------------------------------------------------------ reading

    def last_record(self) -> int:
        """Seq of the newest record in the files, live or not (0 when there is none)."""
        return self._segs[-1].seqs[-1] if self._segs else 0

    @property
    def live(self) -> int:
        return sum(s.live for s in self._segs)

    @property
    def live_bytes(self) -> int:
        return sum(s.live_bytes for s in self._segs)

    def disk_bytes(self) -> int:
        """What the files take (live and not yet compacted records, ack log)."""
        return sum(s.end for s in self._segs) + self._acks_size

    def read(self, after: int, limit: int) -> list[ValueMessage]:
        """Up to ``limit`` live values with seq above ``after``, in seq order.

        Runs of live records are found at C speed (``find``), each segment is read with one ``pread``, and
        the collector is paused while the messages are built (all of them live on: a young-generation pass
        over them is wasted work): 1.75 -> ~1.0 µs a value here (20,000 values of 300 bytes).
        """
        out: list[ValueMessage] = []
        i = max(bisect_right(self._firsts, after) - 1, 0)
        unpack, head, skip, kinds = _BODY.unpack_from, _HEAD.size, _HEAD.size + _BODY.size, KINDS
        with gc_paused():
            for seg in self._segs[i:]:
                idx = _live_run(seg.alive, bisect_right(seg.seqs, after), limit - len(out))
                if not idx:
                    continue
                offs, lens = seg.offs, seg.lens
                lo, hi = offs[idx[0]], offs[idx[-1]] + lens[idx[-1]]
                data = os.pread(seg.reader(), hi - lo, lo)
                add = out.append
                for k in idx:
                    o = offs[k] - lo
                    seq, t, expiry, kind, qos, retain, tl = unpack(data, o + head)
                    a = o + skip
                    b = a + tl
                    # born: when it was spooled (the publish latency of a value read back counts its time on disk)
                    add(ValueMessage(data[a:b].decode(), data[b:o + lens[k]], qos, retain == 1,
                                     None if expiry < 0 else expiry, t, kinds[kind], seq))
                if len(out) >= limit:
                    break
        return out

    def live_records(self, kind: int | None = None) -> Iterator[tuple[int, int, int, float]]:
        """(seq, kind, bytes, spooled-at) of live values, oldest first; only ``kind`` if given."""
        for seg in list(self._segs):
            k = 0
            alive, kinds, seqs, lens, ts = seg.alive, seg.kinds, seg.seqs, seg.lens, seg.ts
            while True:
                k = alive.find(1, k) if kind is None else kinds.find(kind, k)
                if k < 0:
                    break
                if alive[k]:
                    yield seqs[k], kinds[k], lens[k], ts[k]
                k += 1

    def oldest(self) -> float | None:
        """When the oldest live value was spooled (epoch s), None if none."""
        for seg in self._segs:
            k = seg.alive.find(1)
            if k >= 0:
                return seg.ts[k]
        return None

    # ------------------------------------------------------------------ compaction

    def compact(self) -> None:
        """Delete dead sealed segments, rewrite one that is mostly holes, shrink the ack log. Raises OSError."""
        for seg in [s for s in self._segs if not s.live and s is not self._active]:
            self._remove(seg)
        # rewrite only under space pressure: while a backlog drains, segments empty by themselves
        on_disk = sum(s.end for s in self._segs)
        if on_disk > 2 * self.live_bytes + 2 * self.segment_bytes:
            sparse = [s for s in self._segs if s is not self._active and s.live_bytes * 2 < s.end]
            if sparse:
                self._rewrite(min(sparse, key=lambda s: s.live_bytes / max(s.end, 1)))  # one per call: short flushes
        if self._acks_size > self.acks_bytes:
            self._rewrite_acks()

    def _remove(self, seg: _Segment) -> None:
        seg.close()
        seg.path.unlink(missing_ok=True)
        i = self._segs.index(seg)
        del self._segs[i]
        del self._firsts[i]

    def _rewrite(self, seg: _Segment) -> None:
        data = os.pread(seg.reader(), seg.end, 0)
        keep = [k for k in range(len(seg.seqs)) if seg.alive[k]]
        new = _Segment(seg.n, seg.path)
        offs, lens = seg.offs, seg.lens
        out = b"".join([data[offs[k]:offs[k] + lens[k]] for k in keep])
        new.extend(array("q", [seg.seqs[k] for k in keep]).tobytes(), 0, [lens[k] for k in keep],
                   bytes(seg.kinds[k] for k in keep), array("d", [seg.ts[k] for k in keep]).tobytes())
        new.end = len(out)
        tmp = seg.path.with_suffix(".tmp")
        self._replace(tmp, seg.path, bytes(out))
        seg.close()
        i = self._segs.index(seg)
        self._segs[i] = new

    def _rewrite_acks(self) -> None:
        recs = [_ack(_ACK_HIGH, self._high_written, 0)]
        for seg in self._segs:
            dead = [seg.seqs[k] for k in range(len(seg.seqs)) if not seg.alive[k]]
            recs += [_ack(_ACK_RANGE, a, b) for a, b in ranges(dead)]
        data = b"".join(recs)
        path = self.dir / "acks.log"
        self._replace(path.with_suffix(".tmp"), path, data)
        os.close(self._afd)
        self._afd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._acks_size = len(data)
        self._acks_dirty = False

    def _replace(self, tmp: Path, path: Path, data: bytes) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._write(fd, data, tmp, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def close(self) -> None:
        try:
            if self._wfd is not None:
                self._seal()
            os.fsync(self._afd)
        except OSError as exc:
            log.warning("spool %s: sync at close failed (%s)", self.dir, exc)
        finally:
            os.close(self._afd)
            for seg in self._segs:
                seg.close()
            os.close(self._lock)


def inspect(directory: Path) -> tuple[int, int]:
    """(live values, their bytes) in a spool directory another process may hold; reads, never repairs."""
    seqs: dict[int, int] = {}
    top = 0
    for _n, path in sorted((int(p.stem), p) for p in directory.glob("*.seg") if p.stem.isdigit()):
        for _off, ln, body in _parse(path.read_bytes()):
            seq = _BODY.unpack_from(body)[0]
            if seq > top:
                seqs[seq] = ln
                top = seq
    acks = directory / "acks.log"
    data = acks.read_bytes() if acks.exists() else b""
    order = sorted(seqs)
    for pos in range(0, len(data) - _ACK.size + 1, _ACK.size):
        crc, kind, a, b = _ACK.unpack_from(data, pos)
        if crc32(data[pos + 4:pos + _ACK.size]) != crc:
            break
        if kind == _ACK_RANGE:
            for s in order[bisect_left(order, a):bisect_right(order, b)]:
                seqs.pop(s, None)
    return len(seqs), sum(seqs.values())
