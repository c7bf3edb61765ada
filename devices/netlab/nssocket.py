"""Sockets inside a zone from a process that stays in the host namespace: enter the zone's
network namespace on a short-lived thread (setns is per thread), create/bind the socket,
and leave. The socket keeps its namespace, so one asyncio process can host devices in
several zones (``asyncio.start_server(sock=zone_socket(...))``).

Needs CAP_SYS_ADMIN over the lab's user namespace, i.e. the process that started the lab
running as root; unprivileged, run the device with ``lab.popen(zone, argv)`` instead.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns into a lab zone failed: {os.strerror(e)} (needs root over the lab; "
                         "otherwise start the program inside the zone with lab.popen)")


def zone_socket(netns_path: str, host: str, port: int, kind: int = socket.SOCK_STREAM, listen: bool = True) -> socket.socket:
    """A socket bound to ``host:port`` in the network namespace at ``netns_path``."""
    out: dict[str, object] = {}

    def work() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(netns_path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                s = socket.socket(socket.AF_INET, kind)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
                if listen and kind == socket.SOCK_STREAM:
                    s.listen(128)
                s.setblocking(False)
                out["sock"] = s
            finally:
                _setns(home)  # the thread ends anyway; return for tidiness
        except OSError as e:
            out["error"] = e
        finally:
            os.close(home)
            os.close(target)

    t = threading.Thread(target=work, name="netlab-setns")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["sock"]  # type: ignore[return-value]
