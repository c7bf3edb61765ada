"""Run one start-up step in a short-lived forked child (large site files: PyYAML's node tree and the
pydantic model stay in the child; CPython keeps memory it freed, a long-running gateway should not)."""

from __future__ import annotations

import os
import pickle
import signal
import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: above this size a site file is loaded in a child (:func:`in_child`), and its parsed data and compiled
#: tables are cached (gateway/site/configcache.py)
ISOLATE_BYTES = 512 * 1024


def in_child(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a forked child, its result (or exception) pickled back. Interrupted (SIGTERM during
    start-up, gateway/interrupt.py), the child is killed: it must not parse on for seconds.

    A bare fork and a pipe, not a process pool: the child ends with ``os._exit`` as soon as its result is
    written, without freeing what it built (a pool's worker shut down through the interpreter's exit: the
    10,000-point site's node tree and models freed while the gateway waited, 0.15-0.25 s of a first start)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(r)
        code = 0
        try:
            for s in (signal.SIGTERM, signal.SIGINT):  # the parent's stop handlers raise; here a stop just ends it
                signal.signal(s, signal.SIG_DFL)
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
    try:
        with os.fdopen(r, "rb") as f:
            data = f.read()
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"loader child ended without a result ({_describe(status)})")
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def die_with_parent() -> None:
    """In a forked helper: the kernel kills it when its parent dies (Linux; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
