"""gateway/site/isolate.py: the one fork-and-pipe of the loader and the two-process compile. A real fork:
the result and the child's exception come back; a child killed before its result is gone (reaped); a
child that dies without writing is named; a parent interrupted while waiting kills its child."""

from __future__ import annotations

import gc
import os
import signal
import time
import weakref

import pytest

from gateway.interrupt import BuildInterrupted, interruptible
from gateway.site.isolate import in_child, leave, start_child


def _square(n: int) -> int:
    return n * n


def _fail(text: str) -> None:
    raise ValueError(text)


def _sleep_then(value: int, seconds: float) -> int:
    time.sleep(seconds)
    return value


def _die() -> None:
    os._exit(3)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_result_and_exception_come_back() -> None:
    assert in_child(_square, 12) == 144
    assert start_child(_square, 7).result() == 49
    with pytest.raises(ValueError, match="bad site"):
        in_child(_fail, "bad site")


def test_the_caller_works_while_the_child_does() -> None:
    child = start_child(_sleep_then, 5, 0.3)
    t0 = time.monotonic()
    assert time.monotonic() - t0 < 0.2  # start_child did not wait
    assert child.result() == 5
    assert _gone(child.pid)
    child.kill()  # after the result: nothing more to do, no error


def test_kill_stops_and_reaps_a_child_before_its_result() -> None:
    child = start_child(_sleep_then, 1, 30)
    t0 = time.monotonic()
    child.kill()
    assert time.monotonic() - t0 < 5 and _gone(child.pid)
    with pytest.raises(RuntimeError, match="already taken or child killed"):
        child.result()


def test_a_child_that_dies_without_a_result_is_named() -> None:
    with pytest.raises(RuntimeError, match="ended without a result .exit code 3"):
        in_child(_die)


def test_an_interrupted_wait_kills_the_child() -> None:
    child = start_child(_sleep_then, 1, 30)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    previous = signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGTERM))
    try:
        with pytest.raises(BuildInterrupted), interruptible():
            child.result()
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert _gone(child.pid)


def test_the_gateway_loader_runs_meanwhile_during_the_compile(tmp_path, monkeypatch) -> None:
    from gateway.startup import load_gateway_site
    from tests.support.sites import modbus_site

    monkeypatch.setenv("GRIDGATE_CACHE_DIR", "off")  # a first start each time
    _, path = modbus_site(tmp_path)
    seen: list[int] = []
    site = load_gateway_site(path, isolate=True, meanwhile=lambda: seen.append(os.getpid()))
    assert seen == [os.getpid()] and site.source == "child" and site.catalog
    with pytest.raises(ZeroDivisionError):  # a failing ``meanwhile`` is the caller's error; the child is stopped
        load_gateway_site(path, isolate=True, meanwhile=lambda: 1 / 0)


class _Thing:
    pass


def _leave_one() -> tuple[bool, bool, bool]:
    kept, freed = _Thing(), _Thing()
    kept_ref, freed_ref = weakref.ref(kept), weakref.ref(freed)
    leave(kept)
    del kept, freed
    return kept_ref() is not None, freed_ref() is None, gc.isenabled()


def _grandchild_keeps() -> tuple[bool, bool, bool]:
    thing = _Thing()
    ref = weakref.ref(thing)
    leave(thing)
    del thing
    inner = in_child(_leave_one)  # a child's child keeps what its parent left, and what it leaves itself
    return ref() is not None and inner[0], inner[1], inner[2]


def test_a_child_keeps_what_it_leaves_and_never_collects() -> None:
    # a loader child ends through os._exit: what it leaves is never freed (nor collected: no collector there)
    assert in_child(_leave_one) == (True, True, False)
    assert in_child(_grandchild_keeps) == (True, True, False)
    here = _Thing()
    ref = weakref.ref(here)
    leave(here)  # outside a child: nothing is kept
    del here
    assert ref() is None
    assert gc.isenabled()
