"""An independent MMS client (libiec61850's client via the same binding) that walks a served model:
every LD, every MMS variable (LN$FC$DO$DA...), every leaf read with its FC. Test support only."""

from __future__ import annotations

import ctypes as C
import time
from dataclasses import dataclass

from gateway.protocols.iec61850.libiec import FC, MMS_BIT_STRING, MMS_DATA_ACCESS_ERROR, lib, scalar, string_list

MMS_VISIBLE_STRING, MMS_OCTET = 8, 7
_SIGS = {
    "IedConnection_getLogicalDeviceList": (C.c_void_p, [C.c_void_p, C.POINTER(C.c_int)]),
    "IedConnection_getLogicalDeviceVariables": (C.c_void_p, [C.c_void_p, C.POINTER(C.c_int), C.c_char_p]),
    "IedConnection_getLogicalDeviceDataSets": (C.c_void_p, [C.c_void_p, C.POINTER(C.c_int), C.c_char_p]),
    "MmsValue_toString": (C.c_char_p, [C.c_void_p]),
}


def _lib():
    L = lib()
    for n, (res, args) in _SIGS.items():
        f = getattr(L, n)
        f.restype, f.argtypes = res, args
    return L


@dataclass
class Leaf:
    ref: str  # LD/LN.DO[.SDO].DA[...]
    fc: str
    value: object  # python scalar; quality as its 16-bit integer; strings as str


class Browser:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.con = None
        for attempt in range(5):  # a fresh server may drop the very first association on a loaded host
            self._connect()
            err = C.c_int(0)
            string_list(_lib().IedConnection_getLogicalDeviceList(self.con, C.byref(err)))
            if not err.value:
                return
            self.close()
            time.sleep(0.2 * (attempt + 1))
        raise ConnectionError(f"MMS association with {host}:{port} keeps failing")

    def _connect(self) -> None:
        L = _lib()
        self.con = L.IedConnection_create()
        L.IedConnection_setRequestTimeout(self.con, 5000)
        err = C.c_int(0)
        L.IedConnection_connect(self.con, C.byref(err), self.host.encode(), self.port)
        if err.value:
            raise ConnectionError(f"MMS connect to {self.host}:{self.port} failed ({err.value})")

    def close(self) -> None:
        L = lib()
        L.IedConnection_close(self.con)
        L.IedConnection_destroy(self.con)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *a: object) -> None:
        self.close()

    def lds(self) -> list[str]:
        err = C.c_int(0)
        out = string_list(_lib().IedConnection_getLogicalDeviceList(self.con, C.byref(err)))
        assert not err.value, err.value
        return out

    def variables(self, ld: str) -> list[str]:
        err = C.c_int(0)
        out = string_list(_lib().IedConnection_getLogicalDeviceVariables(self.con, C.byref(err), ld.encode()))
        assert not err.value, err.value
        return out

    def datasets(self, ld: str) -> list[str]:
        err = C.c_int(0)
        out = string_list(_lib().IedConnection_getLogicalDeviceDataSets(self.con, C.byref(err), ld.encode()))
        assert not err.value, err.value
        return out

    def read(self, ref: str, fc: str) -> object:
        L = lib()
        err = C.c_int(0)
        v = L.IedConnection_readObject(self.con, C.byref(err), ref.encode(), FC[fc])
        if err.value or not v:
            raise LookupError(f"read {ref} [{fc}] failed ({err.value})")
        try:
            t = L.MmsValue_getType(v)
            if t == MMS_DATA_ACCESS_ERROR:
                raise LookupError(f"read {ref} [{fc}]: data access error")
            if t == MMS_VISIBLE_STRING:
                return (_lib().MmsValue_toString(v) or b"").decode()
            if t == MMS_BIT_STRING and L.MmsValue_getBitStringSize(v) > 2:
                return int(L.Quality_fromMmsValue(v))
            if t == MMS_OCTET:
                return b""
            return scalar(v)
        finally:
            L.MmsValue_delete(v)

    def walk(self) -> dict[str, Leaf]:
        """Every leaf DA of every LD, read with its FC (keyed by reference)."""
        out: dict[str, Leaf] = {}
        for ld in self.lds():
            names = self.variables(ld)
            inner = {n.rsplit("$", 1)[0] for n in names if n.count("$") >= 1}
            for n in names:
                parts = n.split("$")
                if n in inner or len(parts) < 4:  # LN, LN$FC, LN$FC$DO... are not leaves
                    continue
                if parts[1] in ("RP", "BR", "LG", "GO", "MS", "US", "SG"):  # control blocks, not data
                    continue
                ref = f"{ld}/{parts[0]}.{'.'.join(parts[2:])}"
                out[ref] = Leaf(ref, parts[1], self.read(ref, parts[1]))
        return out


def operate(b: Browser, do_ref: str, value: bool, timeout: float = 5.0) -> tuple[bool, int | None]:
    """Operate a DPC/SPC as a real client does (select-with-value first when the model says SBO);
    returns (success, AddCause of a refusal). Enhanced security: the CommandTermination decides."""
    import threading

    from gateway.protocols.iec61850.libiec import CTL_DIRECT_ENHANCED, CTL_SBO_ENHANCED, CTL_SBO_NORMAL, TerminationHandler

    L = lib()
    co = L.ControlObjectClient_create(do_ref.encode(), b.con)
    assert co, f"{do_ref} is not controllable"
    done = threading.Event()
    on_term = TerminationHandler(lambda _p, _c: done.set())
    v = L.MmsValue_newBoolean(value)
    try:
        L.ControlObjectClient_setOrigin(co, b"conformance-test", 3)
        L.ControlObjectClient_setCommandTerminationHandler(co, on_term, None)
        model = L.ControlObjectClient_getControlModel(co)
        if model in (CTL_SBO_NORMAL, CTL_SBO_ENHANCED) and not L.ControlObjectClient_selectWithValue(co, v):
            return False, L.ControlObjectClient_getLastApplError(co).addCause
        if not L.ControlObjectClient_operate(co, v, 0):
            return False, L.ControlObjectClient_getLastApplError(co).addCause
        if model in (CTL_DIRECT_ENHANCED, CTL_SBO_ENHANCED):
            assert done.wait(timeout), f"no CommandTermination for {do_ref}"
            appl = L.ControlObjectClient_getLastApplError(co)
            if appl.error or appl.addCause:
                return False, appl.addCause
        return True, None
    finally:
        L.MmsValue_delete(v)
        L.ControlObjectClient_destroy(co)
