"""Comms faults of the emulated 104 RTU (consulted by ``Iec104Rtu``).

- ``refuse_commands``: every command is refused with a negative activation confirmation (P/N=1): at
  once for direct commands, at the execute for select-before-execute ones (c104 confirms selects itself).
- ``silent``: the RTU's stack stops (open connections drop) and a mute listener takes its port: TCP
  connections are accepted, nothing is ever answered (no STARTDT con, no TESTFR con), so the
  controlling station must detect the silence through its own timers; cleared, the stack restarts.
- ``disconnect`` is handled by the fault engine (RESTART_ON_DISCONNECT): the RTU stops listening.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RtuFaults:
    """What the RTU does wrong right now (replaced as a whole by the fault engine)."""

    refuse_commands: bool = False
    silent: bool = False


def merge(faults: list[Any]) -> RtuFaults:
    return RtuFaults(refuse_commands=any(f.kind == "control_refused" for f in faults),
                     silent=any(f.kind == "silent" for f in faults))


class MuteListener:
    """Accepts TCP connections on a port and never answers (the ``silent`` fault)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"iec104-silent-{port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.setblocking(False)  # read nothing, answer nothing; the kernel buffers what arrives
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self.accepted:
            c.close()
        self.sock.close()
