"""Data-diode conduit: the gateway sends records as UDP datagrams over a one-way link and a
receiver on the other side republishes them. Nothing can come back, so the protocol makes
loss visible instead of repairing it with retransmission:

* every data datagram has a session id and a sequence number → the receiver sees gaps;
* heartbeats carry the last sequence sent → loss at the tail and a dead link are seen too;
* repetition (``copies``) and XOR parity per group of ``parity_group`` datagrams (FEC,
  recovers one loss per group) reduce what is lost;
* whatever is still missing after ``gap_grace_s`` is reported as a gap (counted, logged,
  published on the status topic) — never dropped silently.

Wire format (network byte order) — a fixed header then the body::

    magic "GGD1" | version u8 | type u8 | aux u16 | session u64 | seq u64 | sent f64 | crc32 u32

type 1 data (aux = copy index, body = record JSON), 2 heartbeat (seq = last data seq sent,
aux = parity group, body = sender counters JSON), 3 parity (seq = first seq of the group,
aux = group size, body = XOR of length-prefixed padded bodies).

Authentication (version 2): every datagram carries an HMAC-SHA256 trailer (32 bytes) over
header and body, keyed with a secret held by the sender and the receiver only; a receiver
given the key drops and counts (``unauthenticated``) every datagram without a valid tag, so a
spoofed datagram on the control network never becomes a record. The CRC stays for corruption.
Why not Ed25519 per datagram: verifying costs ~100-300 us in Python, which made the receiver
fall behind its socket buffer under bursts (bench/bench_diode_auth.py); HMAC costs ~2 us. The
air-gap courier, whose importer must not be able to forge, uses Ed25519 (one signature per bundle).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import struct
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable

from gateway.conduits.records import Record
from gateway.site.ratelimit import PeerWarnings

log = logging.getLogger(__name__)

HEADER = struct.Struct("!4sBBHQQdI")
MAGIC = b"GGD1"
VERSION = 1  # CRC only
SIGNED = 2  # CRC + HMAC-SHA256 trailer
TAG_BYTES = 32
DATA, HEARTBEAT, PARITY = 1, 2, 3
MAX_BODY = 60_000


def _tag(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def pack(kind: int, aux: int, session: int, seq: int, body: bytes, sent: float | None = None,
         key: bytes | None = None) -> bytes:
    ver = VERSION if key is None else SIGNED
    dg = HEADER.pack(MAGIC, ver, kind, aux, session, seq, time.time() if sent is None else sent, zlib.crc32(body)) + body
    return dg if key is None else dg + _tag(key, dg)


class BadDatagram(ValueError):
    pass


class Unauthenticated(BadDatagram):
    """No tag, or a tag not made with the shared key: a spoofed (or misconfigured) datagram."""


def unpack(data: bytes, key: bytes | None = None) -> tuple[int, int, int, int, float, bytes]:
    """Check and split one datagram; with ``key``, only datagrams tagged with that key pass."""
    if len(data) < HEADER.size:
        raise BadDatagram(f"short datagram ({len(data)} bytes)")
    magic, ver, kind, aux, session, seq, sent, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BadDatagram("not a gridgate diode datagram (bad magic)")
    if ver == SIGNED:
        if len(data) < HEADER.size + TAG_BYTES:
            raise BadDatagram(f"short authenticated datagram ({len(data)} bytes)")
        signed, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        if key is not None and not hmac.compare_digest(tag, _tag(key, signed)):
            raise Unauthenticated("not authenticated: bad tag (spoofed, or another key)")
        body = signed[HEADER.size:]
    elif ver == VERSION:
        if key is not None:
            raise Unauthenticated("not authenticated: untagged datagram (spoofed, or the sender has no key)")
        body = data[HEADER.size:]
    else:
        raise BadDatagram(f"protocol version {ver}, this receiver speaks {VERSION} and {SIGNED}")
    if zlib.crc32(body) != crc:
        raise BadDatagram("checksum mismatch")
    return kind, aux, session, seq, sent, body


def _xor_bodies(bodies: list[bytes]) -> bytes:
    framed = [len(b).to_bytes(2, "big") + b for b in bodies]
    width = max(len(f) for f in framed)
    acc = bytearray(width)
    for f in framed:
        for i, byte in enumerate(f):
            acc[i] ^= byte
    return bytes(acc)


def _recover(parity: bytes, others: list[bytes]) -> bytes:
    framed = [len(b).to_bytes(2, "big") + b for b in others]
    acc = bytearray(parity)
    for f in framed:
        for i, byte in enumerate(f):
            acc[i] ^= byte
    n = int.from_bytes(acc[:2], "big")
    return bytes(acc[2:2 + n])


@dataclass
class SenderStats:
    records: int = 0
    datagrams: int = 0
    heartbeats: int = 0
    parity: int = 0
    oversize: int = 0  # records too large for one datagram: refused with an error
    send_errors: int = 0


class DiodeSender:
    """Gateway side. ``send(record)`` is synchronous (fire and forget by design)."""

    def __init__(self, host: str, port: int, copies: int = 1, parity_group: int = 0,
                 heartbeat_s: float = 1.0, copy_spacing_s: float = 0.002, key: bytes | None = None) -> None:
        if copies < 1 or parity_group < 0 or parity_group == 1:
            raise ValueError("copies must be ≥ 1 and parity_group 0 (off) or ≥ 2")
        self.addr = (host, port)
        self.copies, self.group, self.heartbeat_s, self.spacing = copies, parity_group, heartbeat_s, copy_spacing_s
        self.session = int.from_bytes(os.urandom(8), "big") >> 1
        self.seq = 0
        self.key = key  # tags every datagram when set
        self.stats = SenderStats()
        self._group_bodies: list[bytes] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._hb: asyncio.Task | None = None

    async def start(self) -> "DiodeSender":
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=self.addr)
        self._hb = asyncio.create_task(self._heartbeats())
        return self

    def _tx(self, datagram: bytes) -> None:
        try:
            assert self._transport is not None, "call start() first"
            self._transport.sendto(datagram)
            self.stats.datagrams += 1
        except OSError as e:
            self.stats.send_errors += 1
            log.warning("diode send failed: %s", e)

    def send(self, rec: Record) -> int | None:
        body = json.dumps(rec.to_wire(), separators=(",", ":")).encode()
        if len(body) > MAX_BODY:
            self.stats.oversize += 1
            log.error("diode: record for %s is %d bytes, over %d: not sent (counted as oversize)", rec.topic, len(body), MAX_BODY)
            return None
        self.seq += 1
        self.stats.records += 1
        loop = asyncio.get_running_loop()
        for copy in range(self.copies):
            dg = pack(DATA, copy, self.session, self.seq, body, key=self.key)
            if copy == 0:
                self._tx(dg)
            else:  # spaced copies survive short bursts of loss
                loop.call_later(self.spacing * copy, self._tx, dg)
        if self.group:
            self._group_bodies.append(body)
            if len(self._group_bodies) == self.group:
                first = self.seq - self.group + 1
                self._tx(pack(PARITY, self.group, self.session, first, _xor_bodies(self._group_bodies), key=self.key))
                self.stats.parity += 1
                self._group_bodies = []
        return self.seq

    def heartbeat(self) -> None:
        self._tx(pack(HEARTBEAT, self.group, self.session, self.seq, json.dumps(asdict(self.stats)).encode(), key=self.key))
        self.stats.heartbeats += 1

    async def _heartbeats(self) -> None:
        while True:
            self.heartbeat()
            await asyncio.sleep(self.heartbeat_s)

    async def close(self) -> None:
        """Send a final heartbeat so the receiver can account for the tail, then stop."""
        await asyncio.sleep(self.spacing * self.copies + 0.01)
        self.heartbeat()
        if self._hb:
            self._hb.cancel()
        await asyncio.sleep(0.01)
        if self._transport:
            self._transport.close()


@dataclass
class ReceiverStats:
    datagrams: int = 0
    records: int = 0  # delivered
    duplicates: int = 0
    recovered: int = 0  # rebuilt from parity
    lost: int = 0  # confirmed gaps, in records
    gaps: list[tuple[int, int]] = field(default_factory=list)
    heartbeats: int = 0
    bad: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    unauthenticated: int = 0  # also in bad: untagged or wrongly tagged datagrams (spoofing)
    sender_restarts: int = 0
    last_seq: int = 0
    silent: bool = False


class DiodeReceiver(asyncio.DatagramProtocol):
    """Control side. ``deliver(seq, record)`` is called once per record, in arrival order;
    ``on_gap(first, last)`` once per confirmed gap."""

    def __init__(self, deliver: Callable[[int, Record], None], on_gap: Callable[[int, int], None] | None = None,
                 gap_grace_s: float = 0.5, silence_s: float = 3.0, max_pending: int = 100_000,
                 key: bytes | None = None) -> None:
        self.deliver, self.on_gap = deliver, on_gap
        self.key = key  # when set, only datagrams tagged with this key are accepted
        self.warnings = PeerWarnings(log)  # a flood of bad datagrams must not flood the log
        self.grace, self.silence_s, self.max_pending = gap_grace_s, silence_s, max_pending
        self.stats = ReceiverStats()
        self.session: int | None = None
        self.next = 1
        self.pending: dict[int, float] = {}  # missing seq → when first missed
        self.bodies: dict[int, bytes] = {}  # recent bodies, for parity recovery
        self.parities: dict[int, tuple[int, bytes]] = {}  # group first seq → (size, parity)
        self.last_rx = time.monotonic()

    # -- datagrams ---------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        self.stats.datagrams += 1
        self.last_rx = time.monotonic()
        self.stats.silent = False
        try:
            kind, aux, session, seq, _sent, body = unpack(data, self.key)
            if session != self.session:
                self._new_session(session)
            if kind == DATA:
                self._data(seq, body)
            elif kind == HEARTBEAT:
                self.stats.heartbeats += 1
                self._advance_to(seq)
            elif kind == PARITY:
                self.parities[seq] = (aux, body)
                self._try_recover(seq)
            else:
                raise BadDatagram(f"unknown datagram type {kind}")
        except (BadDatagram, ValueError) as e:
            reason = str(e).split(":")[0][:60]
            self.stats.bad += 1
            self.stats.unauthenticated += isinstance(e, Unauthenticated)
            self.stats.bad_reasons[reason] = self.stats.bad_reasons.get(reason, 0) + 1
            self.warnings.warn(str(addr[0]) if addr else "?", reason, "diode: dropped bad datagram from %s: %s", addr, e)

    def _new_session(self, session: int) -> None:
        if self.session is not None:
            self.stats.sender_restarts += 1
            self.check(force=True)
            log.warning("diode: sender restarted (new session); sequence restarts at 1")
        self.session, self.next = session, 1
        self.pending.clear()
        self.bodies.clear()
        self.parities.clear()

    def _advance_to(self, seq: int) -> None:
        """Everything up to ``seq`` should exist: mark what has not arrived as missing."""
        if seq < self.next:
            return
        now = time.monotonic()
        if seq - self.next > self.max_pending:  # absurd jump: account for it at once
            self._confirm(self.next, seq - 1)
        else:
            for s in range(self.next, seq + 1):
                self.pending.setdefault(s, now)
        self.next = seq + 1

    def _data(self, seq: int, body: bytes) -> None:
        if seq < self.next and seq not in self.pending:
            self.stats.duplicates += 1
            return
        self._advance_to(seq)
        self.pending.pop(seq, None)
        self._accept(seq, body)
        group = self._group_of(seq)
        if group is not None:
            self._try_recover(group)

    def _accept(self, seq: int, body: bytes) -> None:
        rec = Record.from_wire(json.loads(body))
        self.bodies[seq] = body
        if len(self.bodies) > 4096:
            for s in sorted(self.bodies)[:1024]:
                del self.bodies[s]
        self.stats.records += 1
        self.stats.last_seq = max(self.stats.last_seq, seq)
        self.deliver(seq, rec)

    def _group_of(self, seq: int) -> int | None:
        for first, (size, _) in self.parities.items():
            if first <= seq < first + size:
                return first
        return None

    def _try_recover(self, first: int) -> None:
        size, parity = self.parities[first]
        seqs = range(first, first + size)
        missing = [s for s in seqs if s not in self.bodies]
        if not missing:
            del self.parities[first]
            return
        if len(missing) == 1 and (missing[0] in self.pending or missing[0] >= self.next):
            s = missing[0]
            self._advance_to(s)
            self.pending.pop(s, None)
            self.stats.recovered += 1
            try:
                self._accept(s, _recover(parity, [self.bodies[o] for o in seqs if o != s]))
            except ValueError as e:
                self.stats.bad += 1
                log.warning("diode: parity recovery of seq %d failed: %s", s, e)
            del self.parities[first]

    # -- housekeeping ------------------------------------------------------------------
    def _confirm(self, first: int, last: int) -> None:
        self.stats.lost += last - first + 1
        self.stats.gaps.append((first, last))
        log.error("diode: records %d..%d lost on the one-way link", first, last)
        if self.on_gap:
            self.on_gap(first, last)

    def check(self, force: bool = False) -> None:
        """Confirm gaps older than the grace time; flag a silent link. Call periodically."""
        now = time.monotonic()
        due = sorted(s for s, t in self.pending.items() if force or now - t >= self.grace)
        for s in due:
            del self.pending[s]
        run: list[int] = []
        for s in due:
            if run and s != run[-1] + 1:
                self._confirm(run[0], run[-1])
                run = []
            run.append(s)
        if run:
            self._confirm(run[0], run[-1])
        if now - self.last_rx > self.silence_s and not self.stats.silent:
            self.stats.silent = True
            log.error("diode: nothing received for %.1f s (no heartbeats): link down or sender stopped", self.silence_s)

    def status(self) -> dict:
        d = asdict(self.stats)
        d["pending"] = len(self.pending)
        return d


async def run_receiver(host: str, port: int, publish: Callable[[Record], object], status_topic: str = "gridgate/diode/status",
                       status_s: float = 1.0, gap_grace_s: float = 0.5, stop: asyncio.Event | None = None,
                       key: bytes | None = None) -> DiodeReceiver:
    """Receive until ``stop`` is set; hand each record to ``publish`` (may be async) and
    publish the receiver's counters on ``status_topic`` every ``status_s`` and on each gap."""
    queue: asyncio.Queue[Record] = asyncio.Queue()

    def status_record() -> Record:
        return Record(topic=status_topic, payload=json.dumps(rx.status()).encode(), qos=1, retain=True)

    rx = DiodeReceiver(lambda seq, rec: queue.put_nowait(rec), on_gap=lambda a, b: queue.put_nowait(status_record()),
                       gap_grace_s=gap_grace_s, key=key)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: rx, local_addr=(host, port))
    stop = stop or asyncio.Event()

    async def pump() -> None:
        while True:
            rec = await queue.get()
            r = publish(rec)
            if asyncio.iscoroutine(r):
                await r

    async def checker() -> None:
        while True:
            await asyncio.sleep(gap_grace_s / 2)
            rx.check()

    async def status() -> None:
        while True:
            await asyncio.sleep(status_s)
            queue.put_nowait(status_record())

    tasks = [asyncio.create_task(c()) for c in (pump, checker, status)]
    try:
        await stop.wait()
        # datagrams already in the socket buffer are the sender's tail: take them before closing
        # (a burst can still be queued there), at most 2 s
        end = time.monotonic() + 2.0
        while time.monotonic() < end and time.monotonic() - rx.last_rx < 0.3:
            await asyncio.sleep(0.05)
    finally:
        rx.check(force=True)
        transport.close()
        await asyncio.sleep(0)
        while not queue.empty():
            r = publish(queue.get_nowait())
            if asyncio.iscoroutine(r):
                await r
        r = publish(status_record())
        if asyncio.iscoroutine(r):
            await r
        for t in tasks:
            t.cancel()
    return rx
