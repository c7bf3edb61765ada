"""A faulting APCI proxy in front of the emulated RTU's c104 server (the faults c104 cannot do itself).

The RTU's public port is this proxy; c104 listens on a private loopback port behind it. Frames are
forwarded whole and unchanged unless a fault is active:

- ``silent``: open connections are closed; new ones are accepted and never answered (nothing reaches c104).
- ``startdt_refused``: the controlling station's STARTDT act is swallowed, so no STARTDT con ever comes
  (on injection the open connections are closed, as after an RTU link-layer restart).
- ``ack_loss``: the RTU's acknowledgements are withheld: its S-frames are dropped and the N(R) of its
  I-frames stays at the last value sent before the fault, so the master's unacknowledged I-frames age
  until its t1 fires (and its k window fills if it has more to send). On clear one S-frame with the
  real N(R) is sent.
- ``delay``: every RTU → master frame leaves ``delay_s`` (+ random ``jitter_s``) after it came from c104,
  in order.

Bytes that do not start an APDU (0x68) are forwarded as they are, so malformed frames still reach
lib60870 and are judged there. Threads: one acceptor, and per connection a reader each way plus a writer.
"""

from __future__ import annotations

import logging
import queue
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

STARTDT_ACT = bytes.fromhex("680407000000")


@dataclass(frozen=True)
class LinkFaults:
    """What the proxy does to the link right now (replaced whole)."""

    silent: bool = False
    startdt_refused: bool = False
    ack_loss: bool = False
    delay_s: float = 0.0
    jitter_s: float = 0.0


def read_frame(sock: socket.socket) -> bytes:
    """One APDU (start octet, length octet, body), or the stray bytes when the start octet is wrong.
    b"" at end of stream."""
    head = sock.recv(2)
    if not head:
        return b""
    if head[0] != 0x68:
        return head
    if len(head) == 1:
        more = sock.recv(1)
        if not more:
            return head
        head += more
    body = b""
    while len(body) < head[1]:
        chunk = sock.recv(head[1] - len(body))
        if not chunk:
            return head + body
        body += chunk
    return head + body


class _Link:
    """One controlling station's connection and its upstream connection to c104."""

    def __init__(self, proxy: "FaultProxy", client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.out: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
        self.last_due = 0.0
        self.sent_nr = 0  # N(R) of the last frame forwarded to the master
        self.real_nr = 0  # N(R) c104 last sent (what the master would have been acknowledged with)
        self.frozen_nr: int | None = None
        self.lock = threading.Lock()  # send() runs on the down reader and, for release_acks, the fault setter
        self.closed = threading.Event()

    def start(self, upstream: socket.socket | None) -> None:
        self.upstream = upstream
        if upstream is None:  # silent: hold the connection, answer nothing
            return
        for target, name in ((self._up, "up"), (self._down, "down"), (self._writer, "out")):
            threading.Thread(target=target, name=f"iec104-proxy-{name}", daemon=True).start()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.out.put(None)
        for s in (self.client, self.upstream):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.proxy._forget(self)

    def _up(self) -> None:
        """master → c104: frames unchanged, but STARTDT act swallowed while ``startdt_refused``."""
        assert self.upstream is not None
        try:
            while (frame := read_frame(self.client)):
                if frame == STARTDT_ACT and self.proxy.faults.startdt_refused:
                    self.proxy.count("startdt_withheld")
                    continue
                self.upstream.sendall(frame)
        except OSError:
            pass
        self.close()

    def _down(self) -> None:
        """c104 → master: acknowledgements withheld and delay applied, order kept."""
        assert self.upstream is not None
        try:
            while (frame := read_frame(self.upstream)):
                self.send(frame, from_rtu=True)
        except OSError:
            pass
        self.close()

    def send(self, frame: bytes, from_rtu: bool = False) -> None:
        with self.lock:
            self._send(frame, from_rtu)

    def _send(self, frame: bytes, from_rtu: bool) -> None:
        f = self.proxy.faults
        if from_rtu and len(frame) >= 6 and frame[0] == 0x68 and frame[2] & 0x03 != 0x03:  # I or S frame
            self.real_nr = struct.unpack_from("<H", frame, 4)[0] >> 1
            if f.ack_loss:
                if self.frozen_nr is None:
                    self.frozen_nr = self.sent_nr
                if frame[2] & 0x01:  # S-frame: nothing but an acknowledgement
                    self.proxy.count("acks_withheld")
                    return
                if self.real_nr != self.frozen_nr:
                    self.proxy.count("acks_withheld")
                frame = frame[:4] + struct.pack("<H", self.frozen_nr << 1) + frame[6:]
            else:
                self.frozen_nr = None
            self.sent_nr = struct.unpack_from("<H", frame, 4)[0] >> 1
        now = time.monotonic()
        due = now + f.delay_s + (random.uniform(0, f.jitter_s) if f.jitter_s else 0.0)
        self.last_due = due = max(due, self.last_due)
        if due > now:
            self.proxy.count("frames_delayed")
        self.out.put((due, frame))

    def release_acks(self) -> None:
        """``ack_loss`` cleared: acknowledge what c104 had received (one S-frame with the real N(R))."""
        with self.lock:
            if self.frozen_nr is not None and self.real_nr != self.frozen_nr:
                self.frozen_nr = None
                self.sent_nr = self.real_nr
                self._send(bytes([0x68, 4, 1, 0]) + struct.pack("<H", self.real_nr << 1), from_rtu=False)

    def _writer(self) -> None:
        try:
            while (item := self.out.get()) is not None:
                due, frame = item
                wait = due - time.monotonic()
                if wait > 0 and self.closed.wait(wait):
                    return
                self.client.sendall(frame)
        except OSError:
            pass
        self.close()


class FaultProxy:
    """Listens on ``host:port`` and forwards each connection to c104 at ``upstream`` (loopback)."""

    def __init__(self, host: str, port: int, upstream: tuple[str, int], name: str) -> None:
        self.host, self.upstream, self.name = host, upstream, name
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = int(self.sock.getsockname()[1])
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self._faults = LinkFaults()
        self._links: set[_Link] = set()
        self._live = 0  # links forwarded to c104 (a silent one reaches nothing)
        #: ``on_live(True)`` when a connection is about to reach c104 and none did, before its first frame is
        #: forwarded; ``on_live(False)`` when the last such one closed (proxy threads, under the proxy's lock)
        self.on_live: Callable[[bool], None] | None = None
        self._lock = threading.Lock()
        self.counters: dict[str, int] = {"connections": 0, "silent_connections": 0, "startdt_withheld": 0,
                                         "acks_withheld": 0, "frames_delayed": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"iec104-proxy-{name}", daemon=True)
        self._thread.start()

    @property
    def faults(self) -> LinkFaults:
        return self._faults

    @faults.setter
    def faults(self, new: LinkFaults) -> None:
        old, self._faults = self._faults, new
        if (new.silent and not old.silent) or (new.startdt_refused and not old.startdt_refused):
            self.drop_all()
        elif old.silent and not new.silent:
            self.drop_all()  # the mute connections end; the master reconnects to a live RTU
        if old.ack_loss and not new.ack_loss:
            for link in self.links():
                link.release_acks()

    def count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    def links(self) -> list[_Link]:
        with self._lock:
            return list(self._links)

    def drop_all(self) -> None:
        for link in self.links():
            link.close()

    @property
    def live(self) -> int:
        return self._live

    def _forget(self, link: _Link) -> None:
        with self._lock:
            if link in self._links and link.upstream is not None:
                self._live -= 1
                if not self._live and self.on_live is not None:
                    self.on_live(False)
            self._links.discard(link)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client)
            with self._lock:
                self._links.add(link)
            if self._faults.silent:
                self.count("silent_connections")
                link.start(None)
                continue
            try:
                up = socket.create_connection(self.upstream, timeout=2.0)
            except OSError as e:  # c104 not listening (stopping): the master sees the connection close
                log.info("%s: IEC 104 stack not reachable behind the proxy: %s", self.name, e)
                link.close()
                continue
            up.settimeout(None)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.count("connections")
            with self._lock:
                if link in self._links:  # not already closed (drop_all)
                    link.upstream = up
                    self._live += 1
                    if self._live == 1 and self.on_live is not None:
                        self.on_live(True)
            link.start(up)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.drop_all()
