"""Run one start-up step in a short-lived forked child (large site files: PyYAML's node tree and the
pydantic model stay in the child; CPython keeps memory it freed, a long-running gateway should not).

The one fork-and-pipe of gridgate: :func:`start_child` (the caller goes on while the child works, and
takes the result with :meth:`Child.result`), :func:`in_child` (start and wait). Used by the loader
(gateway/startup.py, gateway/config.py, devices/emusite.py) and by the two-process compile
(gateway/splitcompile.py)."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")

#: above this size a site file is loaded in a child (:func:`in_child`), and its parsed data and compiled
#: tables are cached (gateway/site/configcache.py)
ISOLATE_BYTES = 512 * 1024
#: what :func:`leave` was given in this process, if it is a child of :func:`start_child` (None elsewhere)
_LEFT: list | None = None


def leave(*objs: Any) -> None:
    """In a child of :func:`start_child`: keep ``objs`` until the child ends, never freed (it leaves through
    ``os._exit``); elsewhere nothing. For what a compile built and no longer needs (parsed data, model,
    catalog): freeing them and the collection below took 0.05-0.06 s of a 10,000-point first start between the
    compile and the result (now 0.01-0.02: docs/performance.md, Stop 26)."""
    if _LEFT is not None:
        _LEFT.extend(objs)


class Child(Generic[T]):
    """A forked child computing ``fn(*args)``: :meth:`result` waits for it, :meth:`kill` stops it (both reap it;
    calling either again does nothing more)."""

    __slots__ = ("pid", "_fd", "_done")

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self._fd, self._done = pid, fd, False

    def result(self) -> T:
        """The child's result, or its exception raised here. Interrupted while waiting (SIGTERM during start-up,
        gateway/interrupt.py), the child is killed: it must not parse on for seconds."""
        if self._done:
            raise RuntimeError("loader child: result already taken or child killed")
        try:
            with os.fdopen(self._fd, "rb") as f:
                data = f.read()
        except BaseException:
            self.kill()
            raise
        self._done = True
        _, status = os.waitpid(self.pid, 0)
        if not data:
            raise RuntimeError(f"loader child ended without a result ({_describe(status)})")
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value

    def kill(self) -> None:
        """Stop the child now (SIGKILL) if its result was not taken; nothing if it was."""
        if self._done:
            return
        self._done = True
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        try:
            os.close(self._fd)
        except OSError:
            pass


def start_child(fn: Callable[..., T], *args: Any) -> Child[T]:
    """Fork a child that runs ``fn(*args)`` and pickles its result (or exception) back; returns at once.

    A bare fork and a pipe, not a process pool: the child ends with ``os._exit`` as soon as its result is
    written, without freeing what it built (a pool's worker shut down through the interpreter's exit: the
    10,000-point site's node tree and models freed while the gateway waited, 0.15-0.25 s of a first start).
    On Linux the child dies with the process that forked it (a killed gateway leaves no loader parsing on;
    the kernel ties it to the forking thread, so fork and take the result in the same thread)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        global _LEFT
        if _LEFT is None:  # (a child's child keeps what its parent left: dropping the list would free it here)
            _LEFT = []
        # no collections in a child: it builds what it returns and ends; the first one after a compile (whose
        # objects are all young: the compile pauses the collector) walked them all (see leave)
        gc.disable()
        os.close(r)
        code = 0
        try:
            for s in (signal.SIGTERM, signal.SIGINT):  # the parent's stop handlers raise; here a stop just ends it
                signal.signal(s, signal.SIG_DFL)
            _die_with_parent()
            try:
                out: tuple[bool, Any] = (True, fn(*args))
            except Exception as e:
                out = (False, e)
            try:
                data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:  # an unpicklable result or exception: said, not lost
                data = pickle.dumps((False, RuntimeError(f"loader child: {type(e).__name__}: {e}")))
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(code)
    os.close(w)
    return Child(pid, r)


def in_child(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a forked child (:func:`start_child`), waited for."""
    return start_child(fn, *args).result()


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
