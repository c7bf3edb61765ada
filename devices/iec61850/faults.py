"""Comms faults of the emulated IED (consulted by ``Iec61850Ied``).

- ``suppress_reports``: the IED keeps its MMS association and answers reads, but its
  reporting stalls: firmware updates are written straight into the data model without
  report triggers (reads see fresh values, no dchg/qchg report goes out) and writes to
  report control blocks (GI, RptEna) are refused with access-denied, so no GI report
  either. Integrity reports still follow the RCB's IntgPd (60 s in the generated model).
- ``refuse_add_cause``: every operate is answered FAILED with this IEC 61850-7-2 AddCause.
- association abort is an action, not a state: ``abort_connections`` shuts down every
  accepted MMS socket of the IED (the listener stays, new associations are accepted).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IedFaults:
    """What the IED does wrong right now (replaced as a whole by the fault engine)."""

    suppress_reports: bool = False
    refuse_add_cause: int | None = None




def abort_connections(host: str, port: int) -> int:
    """Shut down every accepted TCP connection of this process on ``host:port``; returns how many.

    libiec61850's connection thread then sees the peer gone and releases the association,
    exactly as after a network abort; the listening socket is untouched."""
    n = 0
    for fd in _fds():
        try:
            dup = os.dup(fd)
        except OSError:
            continue
        try:
            s = socket.socket(fileno=dup)
        except OSError:  # not a socket (a file, a pipe): close the duplicate, or every call leaks one fd per file
            os.close(dup)
            continue
        try:
            if s.type != socket.SOCK_STREAM or s.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            local = s.getsockname()
            if local[1] != port or (host not in ("", "0.0.0.0", "::") and local[0] != host):
                continue
            try:
                s.getpeername()  # the listener has no peer
            except OSError:
                continue
            s.shutdown(socket.SHUT_RDWR)
            n += 1
        except OSError:
            continue
        finally:
            s.close()
    return n


def _fds() -> list[int]:
    try:
        return [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        return []


def merge(faults: list[Any]) -> IedFaults:
    """Merge one IED's comms faults; of several control refusals the latest injected wins."""
    causes = [f.add_cause for f in faults if f.kind == "control_refused"]
    return IedFaults(suppress_reports=any(f.kind == "report_suppression" for f in faults),
                     refuse_add_cause=causes[-1] if causes else None)
