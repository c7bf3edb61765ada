"""Run one start-up step in a short-lived forked child (large site files: PyYAML's node tree and the
pydantic model stay in the child; CPython keeps memory it freed, a long-running gateway should not)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: above this size a site file is loaded in a child (:func:`in_child`), and its parsed data and compiled
#: tables are cached (gateway/site/configcache.py)
ISOLATE_BYTES = 512 * 1024


def in_child(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a forked child, its result (or exception) pickled back. Interrupted (SIGTERM during
    start-up, gateway/interrupt.py), the child is killed: it must not parse on for seconds."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    try:
        return pool.submit(fn, *args).result()
    except BaseException:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
