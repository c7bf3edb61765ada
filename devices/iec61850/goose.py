"""GOOSE publishing of an emulated IED (IEC 61850-8-1): breaker position and protection trips/operates
as a GOOSE data set, published by libiec61850 on a raw Ethernet interface when any member changes
(retransmitted at minTime doubling up to maxTime).

Only inside a lab network namespace (``iec61850.goose_interface``, e.g. ``lo`` of a namespace
gridgate created): GOOSE is layer-2 multicast and must never reach a real station bus.
"""

from __future__ import annotations

import ctypes as C
import os
import re
from functools import lru_cache

from gateway.protocols.iec61850.libiec import lib

GOOSE_DATASET = "dsGoose"
GOOSE_CB = "gcb01"
DST_MAC = (0x01, 0x0C, 0xCD, 0x01, 0x00, 0x01)  # IEC 61850-8-1 GOOSE multicast range
APP_ID = 0x1000
MIN_TIME_MS, MAX_TIME_MS = 4, 1000
#: (LN class, DO) published, in this order
GOOSE_DOS = (("XCBR", "Pos"), ("PTRC", "Tr"), ("PTOC", "Op"), ("PIOC", "Op"))

_SIGS = {
    "GSEControlBlock_create": (C.c_void_p, [C.c_char_p, C.c_void_p, C.c_char_p, C.c_char_p, C.c_uint32, C.c_bool,
                                            C.c_int, C.c_int]),
    "PhyComAddress_create": (C.c_void_p, [C.c_uint8, C.c_uint16, C.c_uint16, C.POINTER(C.c_uint8)]),
    "GSEControlBlock_addPhyComAddress": (None, [C.c_void_p, C.c_void_p]),
    "IedServer_setGooseInterfaceId": (None, [C.c_void_p, C.c_char_p]),
    "IedServer_enableGoosePublishing": (None, [C.c_void_p]),
}


@lru_cache(maxsize=1)
def glib() -> C.CDLL:
    L = lib()
    for name, (res, args) in _SIGS.items():
        f = getattr(L, name)
        f.restype, f.argtypes = res, args
    return L


def goose_entries(lns: dict[str, dict]) -> list[tuple[str, str, str]]:
    """The data-set entries (LN, FC, DO) of an LD's GOOSE data set: every mapped breaker position,
    trip and operate."""
    out = []
    for cls, do in GOOSE_DOS:
        for ln in sorted(lns):
            if re.match(rf"^{cls}\d*$", ln) and do in lns[ln]:
                out.append((ln, "ST", do))
    return out


def add_gocb(lln0: int, ld_name: str, entries: list[tuple[str, str, str]], index: int) -> None:
    """The GOOSE data set and its control block in LLN0 (goID = the GoCB reference)."""
    L = glib()
    ds = L.DataSet_create(GOOSE_DATASET.encode(), lln0)
    for ln, fc, do in entries:
        L.DataSetEntry_create(ds, f"{ln}${fc}${do}".encode(), -1, None)
    gcb = L.GSEControlBlock_create(GOOSE_CB.encode(), lln0, f"{ld_name}/LLN0.{GOOSE_CB}".encode(),
                                   GOOSE_DATASET.encode(), 1, False, MIN_TIME_MS, MAX_TIME_MS)
    mac = (C.c_uint8 * 6)(*DST_MAC[:5], (DST_MAC[5] + index) & 0xFF)
    L.GSEControlBlock_addPhyComAddress(gcb, L.PhyComAddress_create(4, 0, APP_ID + index, mac))


def lab_interface(interface: str) -> bool:
    """GOOSE leaves the host on any interface but loopback; allowed only inside a network namespace
    other than the host's (a lab namespace), never on the host's own interfaces (fail closed)."""
    if interface == "lo":
        return True
    if not os.environ.get("GRIDGATE_LAB_ZONE"):  # set by devices/netlab for the processes in its namespaces
        return False
    try:
        return os.stat("/proc/self/ns/net").st_ino != os.stat("/proc/1/ns/net").st_ino
    except OSError:  # the host's namespace is not visible here (container): trust the lab's marker
        return True


def start_publishing(server: int, interface: str) -> None:
    if not lab_interface(interface):
        raise OSError(
            f"iec61850.goose_interface {interface!r}: GOOSE is published only on 'lo' or inside a lab network "
            "namespace, never on the host's interfaces; run the IED in a netlab profile or use 'lo'"
        )
    L = glib()
    L.IedServer_setGooseInterfaceId(server, interface.encode())


def enable(server: int) -> None:
    glib().IedServer_enableGoosePublishing(server)
