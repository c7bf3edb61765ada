"""Blocking libiec61850 client calls for one association, each mapped to a DriverError on failure.

Every method blocks (with the GIL released, it is ctypes) and is meant to run on the
session's own worker thread, never on the event loop.

Receiving: libiec61850's own connection thread sleeps 10 ms whenever the socket has nothing to
read, so a report that arrives on a quiet association waits 0-10 ms before it is even read
(the largest single share of the burst latency, docs/iec61850-model.md). With ``tick`` set,
the connection is created without that thread and a thread of ours drives it
(``IedConnection_tick``), sleeping ``tick`` seconds when idle: 1 ms costs about 0.15 % of a
core per association more than libiec61850's thread.
"""

from __future__ import annotations

import ctypes as C
import threading
import time

from gateway.protocols.iec61850.libiec import (
    FC,
    IED_ERRORS,
    IED_STATE_CONNECTED,
    ReportCallback,
    lib,
    string_list,
)
from gateway.southbound.session import DriverError


class MmsError(DriverError):
    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}: {IED_ERRORS.get(code, f'error {code}')}")
        self.code = code


class MmsConnection:
    def __init__(self, host: str, port: int, timeout: float, tick: float | None = None) -> None:
        L = lib()
        self.host, self.port, self.timeout = host, port, timeout
        self._ticking = False
        self._ticker: threading.Thread | None = None
        if tick:
            self.con = L.IedConnection_createEx(None, False)
            self._ticking = True
            self._ticker = threading.Thread(target=self._tick_loop, args=(self.con, tick), daemon=True,
                                            name=f"mms-rx-{host}:{port}")
            self._ticker.start()
        else:
            self.con = L.IedConnection_create()
        L.IedConnection_setConnectTimeout(self.con, int(timeout * 1000))
        L.IedConnection_setRequestTimeout(self.con, int(timeout * 1000))
        self._callbacks: list[object] = []  # keep ctypes callbacks alive as long as the connection

    def _check(self, err: C.c_int, what: str) -> None:
        if err.value != 0:
            raise MmsError(what, err.value)

    def connect(self) -> None:
        err = C.c_int(0)
        t0 = time.monotonic()
        lib().IedConnection_connect(self.con, C.byref(err), self.host.encode(), self.port)
        if err.value in (1, 5, 20):  # libiec61850 says "rejected" for refused and for unanswered alike
            if time.monotonic() - t0 >= self.timeout * 0.9:
                raise TimeoutError(f"no answer to the MMS association request from {self.host}:{self.port}")
            raise ConnectionRefusedError(f"MMS association to {self.host}:{self.port} refused")
        self._check(err, f"MMS connect to {self.host}:{self.port}")

    @property
    def alive(self) -> bool:
        return bool(self.con) and lib().IedConnection_getState(self.con) == IED_STATE_CONNECTED

    def read(self, ref: str, fc: str) -> int:
        """The MmsValue* of an FCD; the caller must MmsValue_delete it."""
        err = C.c_int(0)
        v = lib().IedConnection_readObject(self.con, C.byref(err), ref.encode(), FC[fc])
        self._check(err, f"read {ref}[{fc}]")
        if not v:
            raise MmsError(f"read {ref}[{fc}]", 13)
        return v

    def spec(self, ref: str, fc: str) -> int:
        err = C.c_int(0)
        s = lib().IedConnection_getVariableSpecification(self.con, C.byref(err), ref.encode(), FC[fc])
        self._check(err, f"type of {ref}[{fc}]")
        return s

    def dataset_members(self, ds_ref: str) -> list[str]:
        err, deletable = C.c_int(0), C.c_bool(False)
        ll = lib().IedConnection_getDataSetDirectory(self.con, C.byref(err), ds_ref.encode(), C.byref(deletable))
        self._check(err, f"data set {ds_ref}")
        return string_list(ll)

    def ln_directory(self, ln_ref: str, acsi_class: int) -> list[str]:
        err = C.c_int(0)
        ll = lib().IedConnection_getLogicalNodeDirectory(self.con, C.byref(err), ln_ref.encode(), acsi_class)
        self._check(err, f"directory of {ln_ref}")
        return string_list(ll)

    def get_rcb(self, ref: str) -> int:
        err = C.c_int(0)
        rcb = lib().IedConnection_getRCBValues(self.con, C.byref(err), ref.encode(), None)
        self._check(err, f"read RCB {ref}")
        return rcb

    def set_rcb(self, rcb: int, mask: int, what: str) -> None:
        err = C.c_int(0)
        lib().IedConnection_setRCBValues(self.con, C.byref(err), rcb, mask, True)
        self._check(err, what)

    def on_report(self, rcb_ref: str, rpt_id: str, fn) -> None:
        cb = ReportCallback(fn)
        self._callbacks.append(cb)
        lib().IedConnection_installReportHandler(self.con, rcb_ref.encode(), rpt_id.encode(), cb, None)

    def _tick_loop(self, con: int, tick: float) -> None:
        """Our receive thread: read and dispatch whatever arrived (reports, responses), nap when idle."""
        step = lib().IedConnection_tick
        while self._ticking:
            if step(con):
                time.sleep(tick)

    def close(self) -> None:
        """Close (joins the receive thread, libiec61850's or ours, so no callback runs afterwards) and free."""
        L = lib()
        if self.con:
            L.IedConnection_close(self.con)  # our ticker still runs: it completes the close handshake
            if self._ticker is not None:
                self._ticking = False
                if self._ticker is not threading.current_thread():
                    self._ticker.join()
                self._ticker = None
            L.IedConnection_destroy(self.con)
            self.con = None
