"""Where each point's value, q and t sit inside an MMS data object, and how to decode them.

Computed once per association from the server's variable specifications, so decoding a
report is only a few ``MmsValue_getElement`` hops per point (on libiec61850's thread).
"""

from __future__ import annotations

import ctypes as C
import time
from dataclasses import dataclass

from gateway.pipeline import Reading
from gateway.protocols.iec61850.config import MmsPoint
from gateway.protocols.iec61850.libiec import (
    MMS_DATA_ACCESS_ERROR,
    element,
    lib,
    scalar,
    utc_time,
)
from gateway.site.quality import Q


@dataclass(frozen=True)
class Binding:
    """One point inside one FCD: element paths relative to the FCD's structure."""

    key: str
    point: MmsPoint
    path: tuple[int, ...]
    qpath: tuple[int, ...] | None
    tpath: tuple[int, ...] | None
    discrete: bool
    factor: float | None = None  # from the IED's units (units.py); None: the point's scale/offset


def split_member(member: str) -> tuple[str, str]:
    """``LD/LN.DO[FC]`` or ``LD/LN$FC$DO`` → (``LD/LN.DO``, FC)."""
    if member.endswith("]") and "[" in member:
        ref, fc = member[:-1].split("[", 1)
        return ref, fc
    ld, _, rest = member.partition("/")
    parts = rest.split("$")
    if len(parts) >= 3:
        return f"{ld}/{parts[0]}." + ".".join(parts[2:]), parts[1]
    return member, ""


def covers(member_ref: str, reference: str) -> tuple[str, ...] | None:
    """The DA names below ``member_ref`` if the FCD contains ``reference``, else None."""
    if reference == member_ref:
        return ()
    if reference.startswith(member_ref + "."):
        return tuple(reference[len(member_ref) + 1 :].split("."))
    return None


def locate(spec: int, names: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[int, ...] | None, tuple[int, ...] | None] | None:
    """Element indices of the DA and of the q/t of the deepest enclosing (S)DO, or None if absent."""
    L = lib()
    idx = C.c_int(0)
    path: list[int] = []
    qpath = tpath = None
    cur = spec
    for name in names:
        if L.MmsVariableSpecification_getChildSpecificationByName(cur, b"q", C.byref(idx)):
            qpath = (*path, idx.value)
            tpath = None
            if L.MmsVariableSpecification_getChildSpecificationByName(cur, b"t", C.byref(idx)):
                tpath = (*path, idx.value)
        child = L.MmsVariableSpecification_getChildSpecificationByName(cur, name.encode(), C.byref(idx))
        if not child:
            return None
        path.append(idx.value)
        cur = child
    return tuple(path), qpath, tpath


def decode(b: Binding, fcd: int, event: bool, now: float | None = None) -> Reading:
    """One point out of one FCD value: engineering value, q bit for bit, the DA's own t."""
    L = lib()
    v = element(fcd, b.path)
    p = b.point
    if not v or L.MmsValue_getType(v) == MMS_DATA_ACCESS_ERROR:
        return Reading(b.key, None, int(Q.INVALID | Q.BAD_REFERENCE), now or time.time(), p.reference, event)
    q = element(fcd, b.qpath) if b.qpath else None
    t = element(fcd, b.tpath) if b.tpath else None
    quality = L.Quality_fromMmsValue(q) if q else 0
    ts = utc_time(t) if t else (now or time.time())
    return Reading(b.key, engineering(b, scalar(v)), quality, ts, p.reference, event)


def engineering(b: Binding, raw: float | int | bool | None) -> float | int | bool | None:
    p = b.point
    if raw is None:
        return None
    if b.discrete:
        code = int(raw)
        return p.value_map.get(code, code) if p.value_map else code
    if isinstance(raw, bool):
        return raw
    if b.factor is not None:
        return raw if b.factor == 1.0 and isinstance(raw, int) else raw * b.factor
    if isinstance(raw, int) and p.scale == 1.0 and p.offset == 0.0:
        return raw
    return raw * p.scale + p.offset
