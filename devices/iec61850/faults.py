"""Comms faults of the emulated IED (consulted by ``Iec61850Ied``), and the few extra
libiec61850 prototypes they need.

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

import ctypes as C
import socket
from dataclasses import dataclass
from functools import lru_cache

from devices.netguard import accepted_sockets
from gateway.southbound.iec61850.libiec import lib

P = C.c_void_p
#: bool (*)(param, ClientConnection, ACSIClass, LogicalDevice*, LogicalNode*, objectName, subObjectName, accessType)
ControlBlockAccessHandler = C.CFUNCTYPE(C.c_bool, P, P, C.c_int, P, P, C.c_char_p, C.c_char_p, C.c_int)
CB_ACCESS_WRITE = 1

_EXTRA = {
    "IedServer_getAttributeValue": (P, [P, P]),
    "IedServer_setControlBlockAccessHandler": (None, [P, ControlBlockAccessHandler, P]),
    "MmsValue_setFloat": (None, [P, C.c_float]),
    "MmsValue_setInt32": (None, [P, C.c_int32]),
    "MmsValue_setInt64": (None, [P, C.c_int64]),
    "MmsValue_setUint32": (None, [P, C.c_uint32]),
    "MmsValue_setBoolean": (None, [P, C.c_bool]),
    "MmsValue_setBitStringFromInteger": (None, [P, C.c_uint32]),
    "MmsValue_setUtcTimeMs": (P, [P, C.c_uint64]),
    "Dbpos_toMmsValue": (P, [P, C.c_int]),
}


@dataclass(frozen=True)
class IedFaults:
    """What the IED does wrong right now (replaced as a whole by the fault engine)."""

    suppress_reports: bool = False
    refuse_add_cause: int | None = None


@lru_cache(maxsize=1)
def xlib() -> C.CDLL:
    """``lib()`` with the prototypes above added (same library object)."""
    L = lib()
    for name, (res, args) in _EXTRA.items():
        f = getattr(L, name)
        f.restype = res
        f.argtypes = args
    return L


def abort_connections(host: str, port: int) -> int:
    """Shut down every accepted TCP connection of this process on ``host:port``; returns how many.

    libiec61850's connection thread then sees the peer gone and releases the association,
    exactly as after a network abort; the listening socket is untouched."""
    n = 0
    for s in accepted_sockets(host, port):
        try:
            s.shutdown(socket.SHUT_RDWR)
            n += 1
        except OSError:
            continue
    return n
