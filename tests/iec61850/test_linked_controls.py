"""CSWI operates XCBR (IEC 61850-7-4): the controller's position follows the breaker, OpCnt counts
every change, BlkOpn/BlkCls and Loc refuse with the 7-2 AddCause. Through a real MMS client."""

from __future__ import annotations

import time

import pytest

from tests.iec61850.browse import Browser, operate
from tests.iec61850.support import IedProcess, ied_device

OPEN, CLOSED = 1, 2
BLOCKED_BY_PROCESS = 9


def _poll(fn, want, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    got = fn()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.02)
        got = fn()
    return got


def _operate_when_free(b: Browser, ref: str, value: bool):
    """Direct-normal answers at once while the IED still finishes the previous command
    (AddCause Command-already-in-execution): a client retries."""
    for _ in range(50):
        ok, cause = operate(b, ref, value)
        if cause != 12:
            return ok, cause
        time.sleep(0.05)
    return ok, cause


@pytest.mark.parametrize("mode, ctl_model", [("sbo", 4), ("direct", 1)])
def test_cswi_operates_xcbr_and_opcnt_counts(mode: str, ctl_model: int):
    dev = ied_device(breaker_mode=mode)
    with IedProcess(dev) as ied, Browser("127.0.0.1", dev.port) as b:
        ld = "F1PROT"
        pos = lambda ln: b.read(f"{ld}/{ln}.Pos.stVal", "ST")  # noqa: E731
        cnt = lambda: b.read(f"{ld}/XCBR1.OpCnt.stVal", "ST")  # noqa: E731
        assert b.read(f"{ld}/CSWI1.Pos.ctlModel", "CF") == ctl_model  # the controller carries the ctlModel
        assert b.read(f"{ld}/CSWI1.Pos.q", "ST") & 3 == 2  # nothing known yet: INVALID
        ts = ied.update("Pos", CLOSED)  # the firmware's first value: a state, not an operation
        assert _poll(lambda: pos("CSWI1"), CLOSED) == CLOSED
        assert b.read(f"{ld}/CSWI1.Pos.q", "ST") == 0
        assert b.read(f"{ld}/CSWI1.Pos.t", "ST") == pytest.approx(ts, abs=1e-3)
        assert cnt() == 0
        for n, (target, ctl) in enumerate([(OPEN, False), (CLOSED, True), (OPEN, False)], start=1):
            ok, cause = _operate_when_free(b, f"{ld}/CSWI1.Pos", ctl)
            assert ok, cause
            assert _poll(lambda: pos("XCBR1"), target) == target
            assert _poll(lambda: pos("CSWI1"), target) == target
            assert _poll(cnt, n) == n
        assert b.read(f"{ld}/XCBR1.OpCnt.q", "ST") == 0
        assert ied.call(op="stats")["controls"] == 3
        # the firmware moves the breaker itself (a trip): still counted, controller still follows
        ied.update("Pos", CLOSED)
        assert _poll(cnt, 4) == 4 and pos("CSWI1") == CLOSED


def test_blocked_operations_are_refused_with_add_cause():
    dev = ied_device(breaker_mode="sbo")
    with IedProcess(dev) as ied, Browser("127.0.0.1", dev.port) as b:
        ld = "F1PROT"
        ied.update("Pos", CLOSED)
        assert b.read(f"{ld}/XCBR1.BlkOpn.stVal", "ST") is False
        ok, _ = operate(b, f"{ld}/XCBR1.BlkOpn", True)
        assert ok and _poll(lambda: b.read(f"{ld}/XCBR1.BlkOpn.stVal", "ST"), True) is True
        assert b.read(f"{ld}/XCBR1.BlkOpn.q", "ST") == 0
        for obj in ("CSWI1", "XCBR1"):  # blocked whichever object the client operates
            ok, cause = operate(b, f"{ld}/{obj}.Pos", False)
            assert not ok and cause == BLOCKED_BY_PROCESS, (obj, cause)
        time.sleep(0.2)
        assert b.read(f"{ld}/XCBR1.Pos.stVal", "ST") == CLOSED and b.read(f"{ld}/XCBR1.OpCnt.stVal", "ST") == 0
        assert ied.call(op="stats")["controls"] == 0  # refused before reaching the process
        ok, cause = operate(b, f"{ld}/CSWI1.Pos", True)  # closing is not blocked by BlkOpn
        assert ok, cause
        operate(b, f"{ld}/XCBR1.BlkOpn", False)
        operate(b, f"{ld}/XCBR1.BlkCls", True)
        ok, cause = operate(b, f"{ld}/CSWI1.Pos", False)
        assert ok, cause
        assert _poll(lambda: b.read(f"{ld}/XCBR1.Pos.stVal", "ST"), OPEN) == OPEN
        ok, cause = operate(b, f"{ld}/CSWI1.Pos", True)
        assert not ok and cause == BLOCKED_BY_PROCESS
        assert b.read(f"{ld}/XCBR1.OpCnt.stVal", "ST") == 1


def test_local_mode_refuses_remote_operates_with_switching_hierarchy():
    """XCBR.Loc true (the bay switched to local): AddCause 2 Blocked-by-switching-hierarchy.
    (IED in this process: the local/remote switch is the IED's own state, no MMS write sets it.)"""
    from devices.iec61850.server import Iec61850Ied

    dev = ied_device(breaker_mode="direct")
    ied = Iec61850Ied(dev)
    ied.start()
    try:
        ied.update("Pos", CLOSED, 0, time.time())
        with Browser("127.0.0.1", dev.port) as b:
            ied.set_local(True)
            assert b.read("F1PROT/XCBR1.Loc.stVal", "ST") is True and b.read("F1PROT/XCBR1.Loc.q", "ST") == 0
            ok, cause = operate(b, "F1PROT/CSWI1.Pos", False)
            assert not ok and cause == 2
            assert b.read("F1PROT/XCBR1.Pos.stVal", "ST") == CLOSED
            ied.set_local(False)
            ok, cause = _operate_when_free(b, "F1PROT/CSWI1.Pos", False)
            assert ok, cause
            assert _poll(lambda: b.read("F1PROT/XCBR1.Pos.stVal", "ST"), OPEN) == OPEN
    finally:
        ied.stop()
