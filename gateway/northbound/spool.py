"""The durable spool between normaliser and publisher: a segment log (gateway.northbound.segment_log).

Why a segment log rather than SQLite (which this spool used until issue 18): on this project's
bench the log appends ~11x faster, and with SQLite the spool cost 29-33 % of publish throughput
at QoS 0 and 45-47 % at QoS 1; deletions in any order become acknowledgement ranges in a small
second log (batched: one write per flush), crash recovery is a torn-tail check, and the holes
that out-of-order acknowledgements and drops leave are compacted away off the per-value path.
An SQLite spool file found at the path is migrated on open (spool_migrate.py).

Every value carries its gateway ``seq`` (strictly increasing, gap-free as assigned) before it is
spooled; the publisher drains in seq order and acknowledges what the broker acknowledged (QoS 1
PUBACK; QoS 0 once written to the socket).

Durability: a value is *acknowledged into the spool* once ``flush()`` wrote it
(``committed_seq``): from then on it is in the file or already delivered. ``put_many``
(the normaliser's lists, one call each) and ``append`` write by themselves every ``batch``
values; the owner calls ``flush()`` every ``max_delay`` seconds (MqttPublisher does when it
runs on a spool).

Memory: a value is kept as the message it came as (seq, kind and spooled-at time on the
message, no second object). Up to ``read_ahead`` undelivered values wait in memory, ready to
send (20,000: about a second of a 10k-point site polled every 0.5 s, ~9 MB of 300-byte values);
values beyond that go out from memory while not yet written, and are read back from the files
once written (a longer backlog, or an outage) — except that a flush keeps the values it wrote
beyond the window in memory while the window holds fewer than ``read_ahead + batch`` (they were
in memory anyway: the peak is the same, and the read-back is saved). Measured: a QoS 1 burst of 50k values read 43k
back with the earlier 5,000, at ~1.75 µs each.

QoS 1 values (events, discretes) are written before they are handed to the publisher
(group commit: one write per publisher pass under load), so a crash can only cause
re-sends (duplicates), never a gap. QoS 0 values (analog) that go out live before the
next flush are never written at all (``qos0_fast_path``): the spool then costs almost
nothing while the broker is up; only their seqs are made durable first, so a restart
never re-uses a seq a subscriber may have seen. A crash can therefore lose the QoS 0
values of the last ``max_delay`` that were neither written nor delivered — at-most-once,
as QoS 0 is anyway — and subscribers see that as a seq gap.

With ``synchronous="NORMAL"`` (default) written values survive a process crash (kill -9);
``synchronous="FULL"`` fsyncs every flush and also survives power loss, slower.

Bounds: when ``max_bytes`` is exceeded the oldest values are dropped by kind in the order
analog → accumulator → discrete → event; values older than ``max_age_s`` are dropped
whatever their kind. Every drop is counted in ``dropped`` (by kind) and leaves a gap in
``seq`` that subscribers can match against the counts published on the status topic.
``max_bytes`` counts the records of undelivered values; compaction keeps the files within
twice that plus two segments (a segment is an eighth of ``max_bytes``, at most 16 MiB).

A write that fails (disk full, I/O error) is a *state*, not a crash: ``state`` turns
``"unwritable"`` (logged once, ``write_failures`` counts the episodes), nothing is charged to
the byte bound, and values keep flowing to the publisher from memory — QoS 1 values leave
unwritten, so a crash in this state can lose them. At most ``memory_limit`` undelivered
values wait in memory; beyond that the oldest are dropped by kind (analog first) and counted
as ``dropped["unwritable_<kind>"]``. A write is retried every ``retry_interval`` seconds; the
first that succeeds writes what is still undelivered and the state returns to ``"ok"``.

For metrics: ``len()`` (undelivered values) and ``oldest_age()`` (seconds the oldest of them
has waited).
"""

from __future__ import annotations

import errno
import logging
import time
from bisect import bisect_right
from collections import Counter, deque
from operator import attrgetter
from pathlib import Path
from typing import Callable, Literal

from gateway.northbound.message import KIND_CODE, KINDS, Message, ValueMessage
from gateway.northbound.segment_log import SegmentLog
from gateway.northbound.spool_migrate import open_log

log = logging.getLogger(__name__)

Kind = Literal["analog", "accumulator", "discrete", "event"]
__all__ = ["KINDS", "Kind", "Spool", "SpoolError"]  # KINDS: the drop order under the size bound, analog first
_seq_of = attrgetter("seq")


class SpoolError(RuntimeError):
    """The spool file cannot be used; the message names the file and what to do."""


class Spool:
    """A durable, bounded, seq-ordered outbox (see the module docstring).

    Every value is held as its :class:`ValueMessage` (seq, kind and ``born`` — the spooled-at time —
    on the message itself): no second object per value on the way in, out or to the file.
    """

    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 256 << 20,
        max_age_s: float | None = None,
        *,
        batch: int = 10000,
        max_delay: float = 0.05,
        read_ahead: int = 20_000,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        qos0_fast_path: bool = True,
        memory_limit: int = 100_000,
        retry_interval: float = 1.0,
    ) -> None:
        self.path = Path(path)
        if max_bytes < 4096:
            raise SpoolError(f"spool {self.path}: max_bytes {max_bytes} is too small; use at least 4096")
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.batch = batch
        self.max_delay = max_delay
        self.read_ahead = read_ahead
        # segments of an eighth of the bound (64 KiB..16 MiB): compaction frees space in steps
        seg_bytes = min(16 << 20, max(64 << 10, max_bytes // 8))
        self._log: SegmentLog = open_log(self.path, SpoolError, segment_bytes=seg_bytes, fsync=synchronous == "FULL")
        self._rows, self.last_seq = self._log.live, self._log.last_seq
        self.committed_seq = self.last_seq
        self._reserved = self.last_seq
        self.dropped: Counter = Counter()
        self.on_append: Callable[[], None] | None = None  # the publisher's wake-up
        self._pending: list[ValueMessage] = []  # appended, not yet committed (seq order)
        # _rows: values not yet delivered (file + pending); _bytes: what the file holds for them
        self._compact_warned = False
        self._done: list[int] = []  # delivered, not yet deleted
        self._last_age_check = 0.0
        self._fast = 0  # leading _pending values already delivered live (QoS 0)
        self.qos0_fast_path = qos0_fast_path
        self._mem: deque[ValueMessage] = deque()  # next values to send, in seq order
        self._loaded_seq = self.last_seq if not self._rows else 0  # every value up to it is in _mem, taken or gone
        self._taken: dict[int, ValueMessage] = {}
        self._last_commit = time.monotonic()
        # write-failure state (module docstring): values delivered before they could be written
        self.state: Literal["ok", "unwritable"] = "ok"
        self.last_write_error = ""
        self.write_failures = 0  # episodes of "unwritable"
        self.memory_limit = memory_limit
        self.retry_interval = retry_interval
        self._retry_at = 0.0
        self._dropping = False  # this unwritable episode has dropped values (logged once)
        self._gone: set[int] = set()  # uncommitted seqs delivered (or dropped) while unwritable: never written
        if self._rows:
            log.info("spool %s: %d value(s) from a previous run to deliver (seq up to %d)", self.path, self._rows, self.last_seq)

    # ------------------------------------------------------------------ writing

    def append(self, seq: int, kind: Kind, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
               expiry: int | None = None) -> None:
        """Spool one value; ``seq`` must be above every seq spooled before."""
        self.put_many([ValueMessage(topic, payload, qos, retain, expiry, 0.0, kind, seq)], time.time())

    def put(self, msg: Message, kind: str = "analog", seq: int | None = None) -> bool:
        """Outbox interface: spool ``msg`` under ``seq`` (next seq if None). Never refuses: bounds drop old values."""
        if isinstance(msg, ValueMessage):
            msg.kind, msg.seq = kind, seq
            born = msg.born
        else:  # a plain message (MqttPublisher.publish, the Sparkplug outbox): held as a value from here on
            msg, born = ValueMessage(msg.topic, msg.payload, msg.qos, msg.retain, msg.expiry, 0.0, kind, seq), msg.born
        return self.put_many([msg], born or time.time()) == 1

    def put_many(self, msgs: list[ValueMessage], born: float) -> int:
        """Spool a batch of values in one pass (how many: all — bounds drop old values, never new ones).

        Each message keeps its ``kind`` and ``seq`` (None: the next one, set on the message); ``born``
        (now, epoch s) is stamped on every one: the publish latency, the age bound and the oldest
        queued age start there. Seqs must rise above every seq spooled before.

        Batched for the normaliser's lists (MqttPublisher.publish_many): the per-value work is this
        loop and a list extend, ~0.07 µs a value here, against ~0.87 through one ``put`` each (100k values).
        """
        if not msgs:
            return 0
        last = self.last_seq
        code = KIND_CODE
        for m in msgs:
            seq = m.seq
            if seq is None:
                seq = m.seq = last + 1
            elif seq <= last:
                raise ValueError(f"spool {self.path}: seq {seq} is not above the last spooled seq {last}")
            if m.kind not in code:
                raise ValueError(f"spool kind {m.kind!r}: use one of {', '.join(KINDS)}")
            m.born = born
            last = seq
        mem = self._mem
        if self._loaded_seq == self.last_seq and len(mem) < self.read_ahead:
            # live: nothing older waits in the file, hand them to the publisher from memory
            room = self.read_ahead - len(mem)
            if room >= len(msgs):
                mem.extend(msgs)
                self._loaded_seq = last
            else:
                mem.extend(msgs[:room])
                self._loaded_seq = msgs[room - 1].seq  # type: ignore[assignment]
        self._pending += msgs  # written (if still undelivered) at the next flush
        self.last_seq = last
        self._rows += len(msgs)
        if len(self._pending) - self._fast >= self.batch:  # (values already delivered live need no write)
            self.flush()
            if self.state != "ok":
                if self._fast or self._gone:
                    self._forget_gone()
                if len(self._pending) > self.memory_limit:
                    self._drop_unwritable()
        if self.on_append is not None:
            self.on_append()
        return len(msgs)

    def flush(self) -> None:
        """Commit appended values (acknowledging them) and delete delivered ones, then apply the bounds.

        Never raises on a failed write: the spool turns ``unwritable`` and retries later.
        """
        now = time.monotonic()
        if self.state != "ok" and now < self._retry_at:
            return
        if self._pending or self._done or self.last_seq > self.committed_seq:
            # the first _fast pending values already went out live as QoS 0 (and _gone ones while unwritable)
            gone = self._gone
            rows = self._pending[self._fast:] if self._fast else self._pending
            if gone:
                rows = [m for m in rows if m.seq not in gone]
            high = self.last_seq if self.last_seq > self.committed_seq else None  # (pending may be compacted away)
            older = self._log.last_record()  # the newest value in the files before this write
            if not self._write(rows, high, self._done):
                return
            if high is not None:
                self.committed_seq = high
                self._reserved = max(self._reserved, high)
            if rows and rows[-1].seq > self._loaded_seq >= older:  # type: ignore[operator]
                self._keep(rows)
            self._pending = []
            self._done = []
            self._gone.clear()
            self._fast = 0
        elif self.state != "ok" and not self._write([], None, []):
            return
        self._writable_again()
        self._last_commit = now
        self._compact()
        if self._bytes > self.max_bytes or (self.max_age_s is not None and now - self._last_age_check >= 1.0):
            self._last_age_check = now
            self._enforce_bounds()

    def _keep(self, rows: list[ValueMessage]) -> None:
        """Values just written beyond the in-memory window stay in memory, up to ``read_ahead + batch`` there,
        instead of being dropped and read back from the files when their turn comes.

        They are in memory already (the pending batch): keeping them costs no more than the peak the spool
        reaches anyway, while a read-back costs ~0.8 µs a value (a QoS 1 burst of 50,000 read 24,000 back;
        docs/performance.md, "Stop 24"). Only when no older value waits in the files (the caller checks),
        so the seq order holds.
        """
        mem = self._mem
        room = self.read_ahead + self.batch - len(mem)
        if room <= 0:
            return
        i = bisect_right(rows, self._loaded_seq, key=_seq_of)
        more = rows[i:i + room]
        if more:
            mem.extend(more)
            self._loaded_seq = more[-1].seq  # type: ignore[assignment]

    @property
    def _bytes(self) -> int:
        """What the files hold for undelivered values (records acknowledged since the last flush included)."""
        return self._log.live_bytes

    def _write(self, rows: list[ValueMessage], high_seq: int | None, done: list[int]) -> bool:
        """One all-or-nothing write; False (and the spool unwritable) if it failed."""
        try:
            # a probe when there is nothing to write: can we write at all?
            probe = not rows and not done and high_seq is None
            self._log.append(rows, self._log.last_seq if probe else high_seq, done, probe=probe)
            return True
        except OSError as exc:
            self._write_failed(exc)
            return False

    def _compact(self) -> None:
        """Space of delivered values back: failures here cost only disk space, so they are logged, not a state."""
        try:
            self._log.compact()
        except OSError as exc:
            if not self._compact_warned:
                self._compact_warned = True
                log.warning("spool %s: compaction failed (%s); retried at the next flush", self.path, exc)

    def _write_failed(self, exc: Exception) -> None:
        self._retry_at = time.monotonic() + self.retry_interval
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        self.last_write_error = ("disk full: " if full else "") + f"{type(exc).__name__}: {exc}"
        if self.state == "ok":
            self.state = "unwritable"
            self.write_failures += 1
            log.error("spool %s: cannot write (%s); values now go out live from memory (at most %d kept while "
                      "the broker is away, then the oldest are dropped and counted); retrying every %g s — free "
                      "space on that file system", self.path, self.last_write_error, self.memory_limit,
                      self.retry_interval)

    def _writable_again(self) -> None:
        if self.state != "ok":
            self.state = "ok"
            self._dropping = False
            log.warning("spool %s: writable again; spooling resumed (%d undelivered value(s), %s dropped so far)",
                        self.path, self._rows, dict(self.dropped) or "none")

    def _forget_gone(self) -> None:
        """Unwritable: forget pending values already delivered (or dropped), so memory holds only the undelivered."""
        gone = self._gone
        self._pending = [m for m in self._pending[self._fast:] if m.seq not in gone]
        self._fast = 0
        gone.clear()

    def _drop_unwritable(self) -> None:
        """Unwritable and too many undelivered values in memory: drop the oldest, analog first, counted."""
        excess = len(self._pending) - self._fast - len(self._gone) - int(self.memory_limit * 0.9)
        taken = self._taken
        doomed: set[int] = set()
        for kind in KINDS:
            for m in self._pending[self._fast:]:
                if excess <= 0:
                    break
                if m.kind == kind and m.seq not in self._gone and m.seq not in taken:
                    doomed.add(m.seq)  # type: ignore[arg-type]
                    self.dropped[f"unwritable_{kind}"] += 1
                    excess -= 1
        self._gone |= doomed
        self._rows -= len(doomed)
        if self._mem:
            self._mem = deque(m for m in self._mem if m.seq not in doomed)
        if not self._dropping:  # once per episode; the counters say how many
            self._dropping = True
            log.warning("spool %s: unwritable and %d value(s) waiting in memory; dropping the oldest (analog first),"
                        " counted as dropped.unwritable_<kind>", self.path, self.memory_limit)

    # ------------------------------------------------------------------ reading (the publisher)

    def take(self) -> tuple[int, Message] | None:
        mem = self._mem
        if not mem:
            if self._loaded_seq >= self.last_seq:
                return None
            self._load()
            mem = self._mem
            if not mem:
                return None
        msg = mem[0]
        seq: int = msg.seq  # type: ignore[assignment]
        if seq > self.committed_seq:
            if msg.qos or not self.qos0_fast_path:
                self.flush()  # QoS 1 leaves only once committed: after a crash it is re-sent, never missing
                # (unless the spool is unwritable: then it leaves uncommitted, tracked in _taken)
                mem = self._mem
                if not mem or mem[0] is not msg:
                    return self.take()  # the flush's bounds dropped it
            elif self.state != "ok":
                mem.popleft()  # unwritable: delivered live, never to be written
                self._gone.add(seq)
                self._rows -= 1
                return seq, msg
            else:
                # QoS 0 going out live: delivered once written, so never tracked nor written to the file.
                # Uncommitted values are taken in seq order, so these are a prefix of _pending.
                if seq > self._reserved:
                    self._reserve()
                mem.popleft()
                self._fast += 1
                self._rows -= 1
                return seq, msg
        mem.popleft()
        self._taken[seq] = msg
        return seq, msg

    def pop_qos0(self) -> ValueMessage | None:
        """``take`` and ``done`` at once for a QoS 0 value at the head (the publisher counts it delivered as it
        writes it); None when the head needs a PUBACK, or nothing waits in memory (``take`` then refills).

        The same effects as ``take`` + ``done`` (a live value never written; a committed one acknowledged at
        the next flush) in one call: through a spool the publisher's QoS 0 send took two calls a value, through
        the memory queue one (docs/performance.md, "Stop 24").
        """
        mem = self._mem
        if not mem:
            return None
        msg = mem[0]
        if msg.qos:
            return None
        seq: int = msg.seq  # type: ignore[assignment]
        if seq > self.committed_seq:
            if not self.qos0_fast_path:
                return None  # take() commits it first
            if self.state != "ok":
                self._gone.add(seq)  # unwritable: delivered live, never to be written
            else:
                if seq > self._reserved:
                    self._reserve()
                self._fast += 1  # a prefix of _pending (uncommitted values leave in seq order)
            mem.popleft()
            self._rows -= 1
            return msg
        mem.popleft()
        self._rows -= 1
        done = self._done
        done.append(seq)
        if len(done) >= self.batch:
            self.flush()
        return msg

    def _reserve(self) -> None:
        """Make the seqs about to go out live durable as *used*, without writing their values."""
        if self._write([], self.last_seq, []):
            self._reserved = self.last_seq

    def done(self, seq: int) -> None:
        if self._taken.pop(seq, None) is None:
            return  # a QoS 0 value that went out live (never tracked), or already done
        self._rows -= 1
        if seq > self.committed_seq:
            self._gone.add(seq)  # left uncommitted while unwritable: never in the file, nothing to delete
        else:
            self._done.append(seq)
            if len(self._done) >= self.batch:
                self.flush()

    def rewind(self) -> int:
        n = len(self._taken)
        self._mem.extendleft([m for _s, m in sorted(self._taken.items(), reverse=True)])
        self._taken.clear()
        return n

    def __len__(self) -> int:
        return self._rows

    def close(self) -> None:
        self._retry_at = 0.0  # one last attempt even if unwritable
        self.flush()
        if self.state != "ok":
            lost = [m for m in self._pending[self._fast:] if m.seq not in self._gone]
            for m in lost:
                self.dropped[f"unwritable_{m.kind}"] += 1
            if lost:
                log.error("spool %s: closed while unwritable (%s); %d undelivered value(s) could not be kept",
                          self.path, self.last_write_error, len(lost))
        self._log.close()

    def oldest_age(self) -> float:
        """Seconds the oldest undelivered value has waited in the spool (0.0 when it is empty)."""
        t = self._oldest_spooled()
        return max(0.0, time.time() - t) if t is not None and self._rows else 0.0

    def oldest_born(self) -> float | None:
        """When the oldest value not yet delivered reached the spool (in flight, in memory or only in the
        files); None when none: the publisher's oldest queued age (status topic, /metrics) starts here."""
        if self._taken:
            return min((m.born for m in self._taken.values() if m.born), default=None)
        if self._mem:
            return self._mem[0].born or None
        return self._oldest_spooled() if self._rows else None

    def _oldest_spooled(self) -> float | None:
        t = self._log.oldest()
        gone = self._gone
        for m in self._pending[self._fast:]:
            if m.seq not in gone:
                t = m.born if t is None else min(t, m.born)
                break
        return t

    def status(self) -> dict:
        """For the status topic: write state, episodes, and what could not be kept."""
        out: dict = {"state": self.state, "writeFailures": self.write_failures, "values": self._rows,
                     "bytes": self._bytes}
        if self.state != "ok":
            out["error"] = self.last_write_error
        return out

    # ------------------------------------------------------------------ internals

    def _load(self) -> None:
        """Refill ``_mem``: committed values from the file, then pending ones straight from memory (the
        file holds only values older than every pending one, so the order is kept without a flush and a
        read-back of what is still in memory)."""
        rows = self._log.read(self._loaded_seq, self.read_ahead)
        self._mem.extend(rows)
        if len(rows) == self.read_ahead:
            self._loaded_seq = rows[-1].seq  # type: ignore[assignment]
            return
        # the file is exhausted; the rest follows from memory (pending, or never written while unwritable)
        after = rows[-1].seq if rows else self._loaded_seq
        room = self.read_ahead - len(rows)
        pending, gone = self._pending, self._gone
        i = bisect_right(pending, after, lo=self._fast, key=_seq_of)  # (nothing above _loaded_seq is taken)
        if not gone:
            more = pending[i:i + room]
            self._mem.extend(more)
            if i + room < len(pending):
                self._loaded_seq = more[-1].seq  # type: ignore[assignment]
                return
        else:
            for m in pending[i:]:
                if m.seq not in gone:
                    if not room:
                        self._loaded_seq = self._mem[-1].seq  # type: ignore[assignment]
                        return
                    self._mem.append(m)
                    room -= 1
        self._loaded_seq = self.last_seq

    def _enforce_bounds(self) -> None:
        doomed: list[tuple[int, int, int]] = []  # (seq, kind, size)
        busy = set(self._taken)
        if self.max_age_s is not None:
            cutoff = time.time() - self.max_age_s
            for seq, kind, size, t in self._log.live_records():
                if t >= cutoff:
                    break  # spooled in seq order, so the rest are younger
                if seq not in busy:
                    doomed.append((seq, kind, size))
        # hysteresis: free 10 % below the bound so the next values do not each trigger a scan
        excess = self._bytes - sum(r[2] for r in doomed) - int(self.max_bytes * 0.9)
        if self._bytes <= self.max_bytes:
            excess = 0
        chosen = {r[0] for r in doomed}
        for code in range(len(KINDS)):
            if excess <= 0:
                break
            for seq, kind, size, _t in self._log.live_records(code):
                if excess <= 0:
                    break
                if seq in busy or seq in chosen:
                    continue
                doomed.append((seq, kind, size))
                chosen.add(seq)
                excess -= size
        if not doomed:
            return
        try:
            self._log.append([], None, chosen)
        except OSError as exc:
            self._write_failed(exc)
            return
        for _seq, kind, _size in doomed:
            self.dropped[KINDS[kind]] += 1
        self._rows -= len(doomed)
        if self._mem:
            self._mem = deque(m for m in self._mem if m.seq not in chosen)
        log.warning("spool %s: bound reached (max_bytes=%d, max_age_s=%s), dropped %d oldest value(s): %s",
                    self.path, self.max_bytes, self.max_age_s, len(doomed), dict(self.dropped))
        self._compact()
