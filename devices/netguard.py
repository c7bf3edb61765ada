"""Connection hygiene shared by every emulated device's server (Modbus, DNP3, IEC 61850).

A lab network holds careless and hostile peers: masters that connect and never speak,
connection bursts, floods of malformed frames. Each device therefore

- closes a connection that has been idle (nothing received) longer than ``idle_timeout``;
- when its connection cap is reached, closes the *oldest idle* connection for a newcomer
  instead of refusing the newest (a restarted gateway always gets back in), and refuses the
  newcomer only when every held connection was active within ``evict_idle_after``;
- logs per-frame complaints once per peer per interval, with a count (``PeerWarnings``);
- survives EMFILE/ENFILE on accept with one warning per interval instead of a traceback
  per attempt (``quiet_accept_errors``); asyncio itself retries the accept after a pause.

``ConnGuard`` is plain bookkeeping over objects with ``last_active``/``opened``/``close()``;
each protocol server calls ``admit``/``gone`` and ``start_sweeps``/``stop_sweeps`` (one task per
event loop sweeps every device's guard, see ``_SweepRound``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
import struct
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from gateway.site.ratelimit import PeerWarnings

M = TypeVar("M")

__all__ = ["ConnGuard", "ForeignGuard", "GuardLimits", "PeerWarnings", "accepted_sockets", "quiet_accept_errors"]

log = logging.getLogger(__name__)

#: accept errors that mean "out of descriptors or memory" (asyncio pauses accepting on these)
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Guarded(Protocol):
    """What the guard needs of one connection."""

    peer: str
    opened: float  # time.monotonic() at accept
    last_active: float  # time.monotonic() of the last byte received

    def close_by_guard(self, reason: str) -> None: ...


@dataclass(frozen=True)
class GuardLimits:
    """A device's connection policy (plain data; built from the site file's ``connections:``)."""

    max_connections: int = 16
    idle_timeout: float = 120.0  # 0: never close idle connections
    evict_idle_after: float = 5.0  # a held connection idle this long may be closed for a newcomer

    @classmethod
    def of(cls, options: Any) -> "GuardLimits":
        """From a device's ``connections:`` options (gateway.config.ConnectionOptions)."""
        return cls(int(options.max_connections), float(options.idle_timeout), float(options.evict_idle_after))


@dataclass
class GuardCounters:
    accepted: int = 0
    refused: int = 0  # newcomers turned away (cap reached, every connection busy; or single-master policy)
    evicted: int = 0  # idle connections closed to admit a newcomer
    idle_closed: int = 0  # connections closed by the idle timeout

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _host(peer: str) -> str:
    return peer.rsplit(":", 1)[0]


@dataclass
class ConnGuard:
    """The live connections of one device and the policy over them."""

    name: str
    limits: GuardLimits = field(default_factory=GuardLimits)
    counters: GuardCounters = field(default_factory=GuardCounters)
    conns: list[Guarded] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    warnings: PeerWarnings = field(default_factory=lambda: PeerWarnings(log))  # a connection flood logs a line per 10 s
    _round: "_SweepRound | None" = field(default=None, init=False, repr=False, compare=False)

    def admit(self, conn: Guarded) -> bool:
        """Take ``conn`` in, closing the longest-idle held connection if the cap is reached."""
        if len(self.conns) >= self.limits.max_connections:
            victim = self.oldest_idle()
            if victim is None:
                self.counters.refused += 1
                self.warnings.warn(
                    _host(conn.peer), "refused",
                    "%s: refused connection from %s: %d connections open (the cap) and all active within %.0f s; "
                    "raise connections.max_connections or stop the extra masters",
                    self.name, conn.peer, len(self.conns), self.limits.evict_idle_after,
                )
                return False
            self.counters.evicted += 1
            idle = self.clock() - victim.last_active
            self.warnings.warn(
                _host(conn.peer), "evicted",
                "%s: connection cap %d reached; closing %s (idle %.1f s) to admit %s",
                self.name, self.limits.max_connections, victim.peer, idle, conn.peer,
            )
            self.gone(victim)
            victim.close_by_guard(f"idle {idle:.1f} s, closed for a new connection")
        self.counters.accepted += 1
        self.conns.append(conn)
        return True

    def gone(self, conn: Guarded) -> None:
        try:
            self.conns.remove(conn)
        except ValueError:
            pass

    def oldest_idle(self) -> Guarded | None:
        """The held connection idle longest, if idle at least ``evict_idle_after``."""
        if not self.conns:
            return None
        c = min(self.conns, key=lambda c: c.last_active)
        return c if self.clock() - c.last_active >= self.limits.evict_idle_after else None

    def sweep(self) -> int:
        """Close connections idle past ``idle_timeout``; returns how many."""
        t = self.limits.idle_timeout
        if t <= 0:
            return 0
        now = self.clock()
        stale = [c for c in self.conns if now - c.last_active > t]
        for c in stale:
            self.counters.idle_closed += 1
            log.info("%s: closing %s, idle %.0f s (idle_timeout %.0f s)", self.name, c.peer, now - c.last_active, t)
            self.gone(c)
            c.close_by_guard("idle timeout")
        return len(stale)

    def trim(self) -> int:
        """Close the oldest idle connections while more than ``max_connections`` are held; returns how many."""
        n = 0
        while len(self.conns) > self.limits.max_connections:
            victim = self.oldest_idle()
            if victim is None:
                break
            self.counters.evicted += 1
            self.warnings.warn(_host(victim.peer), "evicted", "%s: %d connections, cap %d; closing %s (idle %.1f s)",
                               self.name, len(self.conns), self.limits.max_connections, victim.peer,
                               self.clock() - victim.last_active)
            self.gone(victim)
            victim.close_by_guard("closed for a new connection")
            n += 1
        return n

    def sweep_interval(self) -> float:
        t = self.limits.idle_timeout
        return max(0.05, min(5.0, t / 4)) if t > 0 else 5.0

    def start_sweeps(self, loop: asyncio.AbstractEventLoop) -> None:
        """Sweep every ``sweep_interval()`` on ``loop`` (with every other device's guard, see _SweepRound)
        until ``stop_sweeps``."""
        self.stop_sweeps()
        if self.limits.idle_timeout <= 0:
            return  # nothing to sweep
        self._round = _SweepRound.of(loop, self.sweep_interval())
        self._round.add(self)

    def stop_sweeps(self) -> None:
        if self._round is not None:
            self._round.remove(self)
            self._round = None


#: guards one wake-up of a sweep round visits (~1 µs each when nothing is stale): thousands of
#: devices are swept in slices spread over the interval, never in one pause
SWEEP_SLICE = 256


class _LoopRound(Generic[M]):
    """Members of one event loop sharing one periodic task (``_run``, in a subclass) and one interval: the
    task starts with the first member and ends with the last; the registry holds the loop weakly (a strong
    reference from here would keep a closed loop alive; the loop holds the task while it sleeps)."""

    TASK = "rounds"  # the task's name, with the interval
    _rounds: ClassVar["weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, Any]]"]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._rounds = weakref.WeakKeyDictionary()  # one registry per kind of round

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.interval = interval
        self.guards: dict[int, M] = {}  # by id(): a guard (a dataclass) is not hashable
        self._loop = weakref.ref(loop)
        self._task: weakref.ref[asyncio.Task] | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, interval: float) -> Self:
        by_interval = cls._rounds.setdefault(loop, {})
        r = by_interval.get(interval)
        if r is None:
            r = by_interval[interval] = cls(loop, interval)
        return r

    def add(self, member: M) -> None:
        self.guards[id(member)] = member
        task = self._task() if self._task is not None else None
        if task is None or task.done():
            loop = self._loop()
            if loop is not None:
                self._task = weakref.ref(loop.create_task(self._run(), name=f"{self.TASK} every {self.interval:g} s"))

    def remove(self, member: M) -> None:
        if self.guards.get(id(member)) is member:
            del self.guards[id(member)]
        if not self.guards and self._task is not None:
            task = self._task()
            if task is not None:
                task.cancel()
            self._task = None

    async def _run(self) -> None:
        raise NotImplementedError


class _SweepRound(_LoopRound["ConnGuard"]):
    """The guards of one event loop with one sweep interval, swept by one task: each guard once per
    interval (a guard just added, or while others come and go, at most two intervals apart), a
    slice of SWEEP_SLICE guards per wake-up with the slices spread evenly over the interval.

    Why not a task per device, as before: the devices start in one go, so their sleeps came due in
    step, and every 5 s the loop woke 5,000 tasks back to back: on asyncio's loop every reply
    waited 21-39 ms at 5,000 devices, 80-102 ms at 9,500 (docs/performance.md, "Stop 25")."""

    TASK = "guard sweeps"

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        at = loop.time()
        while self.guards:
            batch = list(self.guards.values())
            slices = -(-len(batch) // SWEEP_SLICE)
            step = self.interval / slices
            for i in range(slices):
                at = max(at + step, loop.time())  # late (a busy loop): the rest of the round moves on, no burst
                await asyncio.sleep(at - loop.time())
                for g in batch[i * SWEEP_SLICE : (i + 1) * SWEEP_SLICE]:
                    if self.guards.get(id(g)) is g:  # not stopped meanwhile
                        try:
                            g.sweep()
                        except Exception:  # one device's failure must not stop every other device's sweeps
                            log.exception("%s: idle sweep failed", g.name)


class _AcceptErrorFilter:
    """Loop exception handler: accept() resource errors become one warning per interval (no traceback)."""

    def __init__(self, previous: Callable[..., Any] | None, interval: float) -> None:
        self.previous = previous
        self.interval = interval
        self.count = 0
        self._since = 0
        self._logged_at = time.monotonic()  # the first warning counts from when the filter was installed

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS and "accept" in str(context.get("message", "")):
            self.count += 1
            self._since += 1
            now = time.monotonic()
            if now - self._logged_at >= self.interval or self.count == 1:
                log.warning(
                    "accept() failed: %s (%d time(s) in the last %.0f s); new connections wait until descriptors "
                    "are free; raise `ulimit -n` or lower connections.max_connections",
                    exc.strerror, self._since, now - self._logged_at,
                )
                self._logged_at = now
                self._since = 0
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop | None = None, interval: float = 10.0) -> _AcceptErrorFilter:
    """Install (once per loop) the accept-error filter; returns it (its ``count`` is the number of failed accepts)."""
    loop = loop or asyncio.get_running_loop()
    h = loop.get_exception_handler()
    if isinstance(h, _AcceptErrorFilter):
        return h
    f = _AcceptErrorFilter(h, interval)
    loop.set_exception_handler(f)
    return f


# ---------------------------------------------------------------- sockets owned by C code (libiec61850)

#: offset of ``tcpi_last_data_recv`` (ms since the peer last sent data) in Linux's struct tcp_info
_TCPI_LAST_DATA_RECV = 52


def accepted_sockets(host: str, port: int) -> Iterator[socket.socket]:
    """Every accepted TCP connection of this process on ``host:port``, as a dup'd socket (closed after use).

    For servers whose sockets live in C (libiec61850): we reach them through /proc/self/fd."""
    for local, s in _accepted({port}):
        try:
            if host in _ANY or local[0] == host:
                yield s
        finally:
            s.close()


_ANY = ("", "0.0.0.0", "::")


def _accepted(ports: "set[int] | dict[int, Any]") -> Iterator[tuple[Any, socket.socket]]:
    """(local (address, port, ...), dup'd socket) of every accepted TCP connection of this process on one of ``ports``;
    the caller closes each socket (one pass over /proc/self/fd: ~5 system calls a descriptor)."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        return
    ours: set[int] = set()  # this pass's dups may take numbers listed (listdir's own, one closed since)
    for fd in fds:
        if fd in ours:
            continue
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if not stat.S_ISSOCK(st.st_mode):
            continue
        try:
            dup = os.dup(fd)
        except OSError:
            continue
        try:
            s = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)  # socket() does not take ownership when it fails
            continue
        ours.add(dup)
        try:
            if s.type != socket.SOCK_STREAM or s.family not in (socket.AF_INET, socket.AF_INET6):
                s.close()
                continue
            local = s.getsockname()
            if local[1] not in ports:
                s.close()
                continue
            s.getpeername()  # the listener has no peer
        except OSError:
            s.close()
            continue
        yield local, s


def idle_seconds(s: socket.socket) -> float:
    """Seconds since the peer last sent data on ``s`` (the kernel's TCP_INFO; 0.0 if unavailable)."""
    try:
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return struct.unpack_from("I", info, _TCPI_LAST_DATA_RECV)[0] / 1000.0
    except (OSError, struct.error):
        return 0.0


@dataclass
class _ForeignConn:
    """A ``Guarded`` view of an accepted socket that C code owns; closing it shuts it down for that code."""

    peer: str
    opened: float
    last_active: float
    host: str
    port: int

    def close_by_guard(self, reason: str) -> None:
        for s in accepted_sockets(self.host, self.port):
            p = s.getpeername()
            if f"{p[0]}:{p[1]}" == self.peer:
                s.shutdown(socket.SHUT_RDWR)  # the C server sees the peer gone and releases the association


class ForeignGuard:
    """Applies a ``ConnGuard`` to a C server's connections by periodic inspection.

    The C server is given a cap one above ``max_connections``, so a newcomer always finds the
    spare slot; each sweep then closes the oldest idle connection to free it again, and any
    connection idle past ``idle_timeout``."""

    def __init__(self, guard: ConnGuard, host: str, port: int, interval: float = 0.5) -> None:
        self.guard, self.host, self.port, self.interval = guard, host, port, interval
        self._seen: dict[str, float] = {}
        self._round: _ForeignRound | None = None

    def sweep(self, socks: "list[tuple[str, socket.socket]] | None" = None) -> None:
        """Inspect this server's connections: ``socks`` (local address, socket) of its port from a shared pass
        over the process's descriptors (:class:`_ForeignRound`), else its own pass."""
        if socks is None:
            own = [(local[0], s) for local, s in _accepted({self.port})]
            try:
                return self.sweep(own)
            finally:
                for _, s in own:
                    s.close()
        now = self.guard.clock()
        conns: list[Guarded] = []
        for local, s in socks:
            if self.host not in _ANY and local != self.host:
                continue
            p = s.getpeername()
            peer = f"{p[0]}:{p[1]}"
            opened = self._seen.setdefault(peer, now)
            conns.append(_ForeignConn(peer, opened, now - idle_seconds(s), self.host, self.port))
        if len(self._seen) > len(conns):
            live = {c.peer for c in conns}
            self._seen = {k: v for k, v in self._seen.items() if k in live}
        self.guard.counters.accepted += sum(1 for c in conns if c.opened == now)
        self.guard.conns = conns
        self.guard.sweep()
        self.guard.trim()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Inspected every ``interval`` s from now on, by the loop's one inspection task."""
        self._round = _ForeignRound.of(loop, self.interval)
        self._round.add(self)

    def stop(self) -> None:
        if self._round is not None:
            self._round.remove(self)
            self._round = None


class _ForeignRound(_LoopRound["ForeignGuard"]):
    """The ForeignGuards of one event loop and interval, inspected by one task: one pass over
    /proc/self/fd per interval, each accepted socket handed to the guards of its port.

    Why not a task per server, as before: each listed and inspected *every* descriptor of the process
    (~5 system calls each) every 0.5 s, so N IEDs cost N passes over ~2N+ descriptors: quadratic (300
    servers with a connection each, 909 descriptors: 1.88 CPU-s a round, against 10 ms for one shared
    pass), and the tasks of servers started together woke in step (docs/performance.md, "Stop 25")."""

    TASK = "C servers' connections"

    def inspect(self) -> None:
        """One pass: every guard swept with its port's sockets (none: its connections are gone)."""
        guards = list(self.guards.values())
        by_port: dict[int, list[tuple[str, socket.socket]]] = {fg.port: [] for fg in guards}
        try:
            for local, s in _accepted(by_port):
                by_port[local[1]].append((local[0], s))
            for fg in guards:
                try:
                    fg.sweep(by_port[fg.port])
                except Exception:  # one server's failure must not stop every other server's inspection
                    log.exception("%s: connection inspection failed", fg.guard.name)
        finally:
            for socks in by_port.values():
                for _, s in socks:
                    s.close()

    async def _run(self) -> None:
        while self.guards:
            await asyncio.sleep(self.interval)
            self.inspect()


def abort_connections(host: str, port: int) -> int:
    """Shut down every accepted TCP connection of this process on ``host:port``; returns how many.

    For servers whose sockets live in C (libiec61850, lib60870): their connection thread sees the peer
    gone and releases the association, exactly as after a network abort; the listener is untouched."""
    n = 0
    for s in accepted_sockets(host, port):
        try:
            s.shutdown(socket.SHUT_RDWR)
            n += 1
        except OSError:
            continue
    return n
