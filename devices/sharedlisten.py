"""One listening socket per port for emulated devices that each have their own 127.x address.

Why: a network engineer emulating thousands of secondary-substation RTUs gives each its own
address and the standard port (Modbus 502, DNP3 20000), as on the real network; on loopback that is
127.0.x.y (all of 127.0.0.0/8 is local on Linux). With a listening socket per device plus one
accepted socket per connected master, 10,000 devices need 20,000 descriptors, this machine's hard
limit (docs/performance.md, "Stop 26"). Here the devices of one port share ONE socket bound to
0.0.0.0:port with SO_BINDTODEVICE "lo" (so it never accepts a connection arriving on another
interface), and each accepted connection goes to the device whose address it was made to
(``getsockname``); a connection to an address no device has is reset at once and counted.

What is shared (:func:`shared_ports`): a port of two or more devices, every one of them on a 127.x
IPv4 address and of a protocol whose server takes accepted sockets (Modbus, DNP3:
``SHARES_LISTENERS`` in devices/<protocol>/emulated.py), all served by this process (a ``--device``
subset or a ``--processes`` shard keeps a socket per device: another process serves the rest of
the port). IEC 61850 and IEC 104 servers open their sockets in C and keep one each.

Per device everything stays its own: connection limits and idle sweeps (devices/netguard.py),
statistics, and faults: a device stopped by a ``disconnect`` fault detaches its address (its
connections are then reset at once, where its own closed socket refused them), its neighbours
keep serving.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from devices.netguard import RESOURCE_ERRNOS, PeerWarnings

log = logging.getLogger(__name__)

#: accept() calls per wake-up of one listening socket (then the loop serves others)
ACCEPT_BATCH = 256
#: seconds before accept() is tried again after it ran out of descriptors (asyncio's own delay)
ACCEPT_RETRY_DELAY = 1.0
#: a shared socket's accept queue: thousands of masters connect at once (the kernel caps it at somaxconn)
SHARED_BACKLOG = 4096
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_LINGER_RESET = struct.pack("ii", 1, 0)  # close() then sends RST: as close to "refused" as an accepted socket gets

#: what a device does with a connection accepted for its address
OnSocket = Callable[[socket.socket], None]


class SharedPortError(OSError):
    """A shared port cannot be opened; the message names the port, its devices and the fix."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)

    def __str__(self) -> str:
        return str(self.strerror)


def loopback_v4(host: str) -> str | None:
    """``host`` as the dotted text getsockname() gives, if it is a 127.0.0.0/8 IPv4 address; else None."""
    try:
        a = ipaddress.IPv4Address(host)
    except ValueError:
        return None
    return str(a) if a in LOOPBACK else None


def shared_ports(devices: Iterable[tuple[str, str, int, bool]]) -> dict[int, list[str]]:
    """port → names of the devices that share its socket, from (name, host, port, protocol shares) of every
    enabled device of the site (all of them served here: the caller checks). A port is shared when two or
    more devices use it and each one is on a 127.x address and of a sharing protocol: one device elsewhere
    on it (0.0.0.0, ::1, ``localhost``, an IEC 61850 IED) would conflict with 0.0.0.0:port."""
    by_port: dict[int, list[str]] = {}
    excluded: set[int] = set()
    for name, host, port, shares in devices:
        if port and shares and loopback_v4(host) is not None:
            by_port.setdefault(port, []).append(name)
        else:
            excluded.add(port)
    return {p: names for p, names in by_port.items() if len(names) > 1 and p not in excluded}


_bind_to_lo: str | None = None
_bind_checked = False


def why_not_shared() -> str | None:
    """None if this process may bind a socket to "lo" (Linux 5.7+ allows it unprivileged on an unbound
    socket), else why not (checked once, on a throwaway socket)."""
    global _bind_to_lo, _bind_checked
    if not _bind_checked:
        _bind_checked = True
        opt = getattr(socket, "SO_BINDTODEVICE", None)
        if opt is None:
            _bind_to_lo = "this system has no SO_BINDTODEVICE (Linux only)"
        else:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.setsockopt(socket.SOL_SOCKET, opt, b"lo")
            except OSError as e:
                _bind_to_lo = f"setsockopt(SO_BINDTODEVICE, lo) failed: {e.strerror or e} (a kernel before 5.7 needs CAP_NET_RAW)"
    return _bind_to_lo


class Acceptor:
    """Listening sockets accepted with ``add_reader`` on any loop (asyncio's selector loop, uvloop); each accepted
    socket goes to ``take``. accept() running out of descriptors goes to the loop's exception handler with
    asyncio's message (netguard.quiet_accept_errors makes it one warning per interval) and is retried after
    ACCEPT_RETRY_DELAY, as asyncio's own server does."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[socket.socket]) -> None:
        self.loop = loop
        self.sockets = sockets
        self.closed = False
        for s in sockets:
            loop.add_reader(s.fileno(), self._accept, s)

    def take(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in RESOURCE_ERRNOS:
                    raise
                self.loop.call_exception_handler(
                    {"message": "socket.accept() out of system resource", "exception": exc, "socket": lsock}
                )
                self.loop.remove_reader(lsock.fileno())
                self.loop.call_later(ACCEPT_RETRY_DELAY, self._resume, lsock)
                return
            self.take(sock)

    def _resume(self, lsock: socket.socket) -> None:
        if not self.closed:
            self.loop.add_reader(lsock.fileno(), self._accept, lsock)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for s in self.sockets:
            self.loop.remove_reader(s.fileno())
            s.close()

    def is_serving(self) -> bool:
        return not self.closed

    async def wait_closed(self) -> None:
        """Nothing to wait for: closing is immediate (the same call as asyncio.Server's)."""


class OwnListener(Acceptor):
    """A device's own listening sockets (no shared port): accepted by Acceptor on every loop, each accepted
    socket to ``take``. Bound like ``loop.create_server`` (every address of ``host``, SO_REUSEADDR, IPv6
    only on IPv6 sockets).

    Why not ``create_server`` on uvloop: at the open-file limit libuv accepts and closes every pending
    connection without a word (its EMFILE trick). Measured: 9,500 Modbus devices on ports of their own
    restarted while the bench's port probes were still being closed reached the 20,000 limit and lost
    8,438 of 9,500 master connections, with nothing logged. Here accept() pauses for ACCEPT_RETRY_DELAY
    with one warning, and the masters wait in the kernel's queue until descriptors are free again."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[socket.socket], take: OnSocket) -> None:
        self.take = take  # type: ignore[method-assign]
        super().__init__(loop, sockets)

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, host: str | None, port: int, take: OnSocket,
                   backlog: int) -> "OwnListener":
        host = host or None
        try:  # a numeric address needs no resolver thread (asyncio's create_server skips it too)
            infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE | socket.AI_NUMERICHOST)
        except socket.gaierror:
            infos = await loop.getaddrinfo(host, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, addr in dict.fromkeys(infos):
                s = socket.socket(family, kind, proto)
                sockets.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(addr)
                s.listen(backlog)
                s.setblocking(False)
        except OSError:
            for s in sockets:
                s.close()
            raise
        return cls(loop, sockets, take)


def serve_accepted(loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: Callable[[], asyncio.BaseProtocol]) -> None:
    """Run an accepted socket through a Protocol/Transport, as ``create_server`` would have (any loop)."""
    task = loop.create_task(loop.connect_accepted_socket(factory, sock))
    _connecting.add(task)
    task.add_done_callback(lambda t: _connected(t, sock))


_connecting: set[asyncio.Task] = set()  # the loop keeps tasks weakly


def _connected(task: asyncio.Task, sock: socket.socket) -> None:
    _connecting.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.info("accepted connection dropped before it was served: %s", task.exception())
        sock.close()


class SharedPort(Acceptor):
    """0.0.0.0:port bound to "lo": each accepted connection to the device of its local address."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, port: int) -> None:
        super().__init__(loop, [sock])
        self.port = port
        self.devices: dict[str, OnSocket] = {}  # local address → the device's handler
        self.refused = 0  # connections to an address no device has (now)
        self.warnings = PeerWarnings(log)

    @classmethod
    def open(cls, loop: asyncio.AbstractEventLoop, port: int) -> "SharedPort":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")  # never another interface's connections
            s.bind(("0.0.0.0", port))
            s.listen(SHARED_BACKLOG)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        return cls(loop, s, port)

    def take(self, sock: socket.socket) -> None:
        try:
            local = sock.getsockname()[0]
        except OSError:  # the master is gone already
            sock.close()
            return
        on_socket = self.devices.get(local)
        if on_socket is not None:
            on_socket(sock)
            return
        self.refused += 1
        try:
            p = sock.getpeername()
            peer = f"{p[0]}:{p[1]}"
        except OSError:
            peer = "?"
        self.warnings.warn(local, "no device",
                           "port %d: connection from %s to %s reset: no emulated device listens on that address",
                           self.port, peer, local)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
        sock.close()


class Attachment:
    """One device's share of a SharedPort: what its server holds where it held its own listening socket
    (``sockets``, ``close()``, ``wait_closed()``, ``is_serving()``)."""

    def __init__(self, owner: "SharedListeners", port: SharedPort, address: str) -> None:
        self._owner, self._port, self.address = owner, port, address
        self.sockets = port.sockets
        self.closed = False

    def close(self) -> None:
        """Stop taking connections to this device's address (its neighbours are untouched)."""
        if not self.closed:
            self.closed = True
            self._owner._detach(self._port, self.address)

    def is_serving(self) -> bool:
        return not self.closed

    async def wait_closed(self) -> None:
        """Nothing to wait for (as Acceptor)."""


@dataclass
class SharedListeners:
    """The shared ports of one emulator: ``attach`` opens a port's socket with its first device and closes
    it with its last (a port not in ``ports``, or an address outside 127.0.0.0/8: None, the device opens
    its own)."""

    ports: dict[int, list[str]] = field(default_factory=dict)  # port → its devices' names (for errors)
    _open: dict[int, SharedPort] = field(default_factory=dict)

    def attach(self, host: str, port: int, on_socket: OnSocket, name: str) -> Attachment | None:
        address = loopback_v4(host)
        if port not in self.ports or address is None:
            return None
        sp = self._open.get(port)
        if sp is None:
            try:
                sp = SharedPort.open(asyncio.get_running_loop(), port)
            except OSError as e:
                raise self._error(port, e) from None
            self._open[port] = sp
            log.info("port %d: one listening socket (0.0.0.0, loopback only) for %d devices on 127.x addresses",
                     port, len(self.ports[port]))
        if address in sp.devices:
            raise SharedPortError(errno.EADDRINUSE, f"device {name} cannot listen on {address}:{port}: another device "
                                  "of this emulator has that address and port; give each device its own")
        sp.devices[address] = on_socket
        return Attachment(self, sp, address)

    def _detach(self, sp: SharedPort, address: str) -> None:
        sp.devices.pop(address, None)
        if not sp.devices:
            sp.close()
            if self._open.get(sp.port) is sp:
                del self._open[sp.port]

    @property
    def refused(self) -> int:
        """Connections reset because no device had their address (ports open now)."""
        return sum(sp.refused for sp in self._open.values())

    def _error(self, port: int, e: OSError) -> SharedPortError:
        names = self.ports[port]
        some = ", ".join(names[:3]) + (f" and {len(names) - 3:,} more" if len(names) > 3 else "")
        if e.errno == errno.EADDRINUSE:
            fix = (f"another program listens on port {port} (on a 127.x address or on every address; "
                   f"`ss -ltnp 'sport = :{port}'` shows which): stop it, or give these devices another port")
        elif e.errno in RESOURCE_ERRNOS:
            fix = "out of open files; raise `ulimit -n`"
        else:
            fix = "give these devices another port"
        return SharedPortError(e.errno or errno.EADDRINUSE,
                               f"port {port}: cannot open the listening socket that {len(names):,} devices on 127.x "
                               f"addresses share ({some}) on 0.0.0.0:{port}, loopback only: {e.strerror or e}; {fix}")
