"""Walk a libiec61850 model in C memory (LD → LN → DO → DA), whatever built it (generated, .cfg, SCL).

The server uses it to find every q/t pair (unfed data is served invalid, never good with a
1970 timestamp) and the SCL exporter uses it to write what is really served.
"""

from __future__ import annotations

import ctypes as C
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator

from gateway.protocols.iec61850.libiec import lib

LD_TYPE, LN_TYPE, DO_TYPE, DA_TYPE = 0, 1, 2, 3
FC_NAMES = {0: "ST", 1: "MX", 2: "SP", 3: "SV", 4: "CF", 5: "DC", 6: "SG", 7: "SE", 8: "SR", 9: "OR", 10: "BL",
            11: "EX", 12: "CO"}

_SIGS = {
    "ModelNode_getName": (C.c_char_p, [C.c_void_p]),
    "ModelNode_getParent": (C.c_void_p, [C.c_void_p]),
    "ModelNode_getType": (C.c_int, [C.c_void_p]),
    "DataAttribute_getFC": (C.c_int, [C.c_void_p]),
    "DataAttribute_getTrgOps": (C.c_uint8, [C.c_void_p]),
    "IedModel_getDeviceByIndex": (C.c_void_p, [C.c_void_p, C.c_int]),
    "LogicalDevice_getLogicalNodeCount": (C.c_int, [C.c_void_p]),
}


@lru_cache(maxsize=1)
def wlib() -> C.CDLL:
    L = lib()
    for name, (res, args) in _SIGS.items():
        f = getattr(L, name)
        f.restype, f.argtypes = res, args
    return L


@dataclass
class Node:
    """One DO or DA as plain data (children in model order)."""

    name: str
    kind: int  # DO_TYPE or DA_TYPE
    ptr: int
    da_type: int = -1
    fc: str = ""
    trg: int = 0
    children: list["Node"] = field(default_factory=list)


class _Head(C.Structure):
    """The common head of every libiec61850 model node struct (type, name, parent, sibling, firstChild)."""

    _fields_ = [("t", C.c_int), ("name", C.c_char_p), ("parent", C.c_void_p), ("sibling", C.c_void_p),
                ("child", C.c_void_p)]


def children(ptr: int) -> Iterator[int]:
    c = C.cast(ptr, C.POINTER(_Head)).contents.child
    while c:
        yield c
        c = C.cast(c, C.POINTER(_Head)).contents.sibling


def name(ptr: int) -> str:
    return (wlib().ModelNode_getName(ptr) or b"").decode()


def tree(ptr: int) -> Node:
    """A DO or DA and everything below it."""
    L = wlib()
    kind = L.ModelNode_getType(ptr)
    n = Node(name(ptr), kind, ptr)
    if kind == DA_TYPE:
        n.da_type = L.DataAttribute_getType(ptr)
        n.fc = FC_NAMES.get(L.DataAttribute_getFC(ptr), "??")
        n.trg = L.DataAttribute_getTrgOps(ptr)
    n.children = [tree(c) for c in children(ptr)]
    return n


def logical_nodes(model: int) -> Iterator[tuple[str, str, int]]:
    """(LD name as served, LN name, LN*) in model order."""
    L = wlib()
    for i in range(L.IedModel_getLogicalDeviceCount(model)):
        ld = L.IedModel_getDeviceByIndex(model, i)
        ld_name = name_of_ld(model, ld)
        for ln in children(ld):
            yield ld_name, name(ln), ln


def name_of_ld(model: int, ld: int) -> str:
    """The LD's served name: its ldName if set, else IED name + inst (what MMS clients see)."""
    # LogicalDevice { ModelNodeType; char* name; ModelNode* parent; sibling; firstChild; char* ldName; ...}
    class _LD(C.Structure):
        _fields_ = [("t", C.c_int), ("name", C.c_char_p), ("parent", C.c_void_p), ("sibling", C.c_void_p),
                    ("child", C.c_void_p), ("ldName", C.c_char_p)]

    class _Model(C.Structure):
        _fields_ = [("name", C.c_char_p)]

    s = C.cast(ld, C.POINTER(_LD)).contents
    if s.ldName:
        return s.ldName.decode()
    ied = C.cast(model, C.POINTER(_Model)).contents.name or b""
    return ied.decode() + (s.name or b"").decode()


def status_pairs(model: int) -> Iterator[tuple[str, int, int]]:
    """(DO reference, q*, t*) of every (sub-)DO that has both q and t."""

    def visit(prefix: str, ptr: int) -> Iterator[tuple[str, int, int]]:
        kids = {name(c): c for c in children(ptr)}
        if "q" in kids and "t" in kids:
            yield prefix, kids["q"], kids["t"]
        for n, c in kids.items():
            if wlib().ModelNode_getType(c) == DO_TYPE:
                yield from visit(f"{prefix}.{n}", c)

    for ld, ln, ln_ptr in logical_nodes(model):
        for do in children(ln_ptr):
            yield from visit(f"{ld}/{ln}.{name(do)}", do)
