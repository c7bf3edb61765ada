"""The cyclic garbage collector paused for a block that allocates many objects and frees none.

Why: a site's parse, validation and compile, an emulator's start and a spool read-back each build
tens of objects per point or value that all live on; young-generation passes over them find no
garbage, and as the heap grows each later pass costs more (quadratic in a large site: at 10,000
points collections were 0.4 of 1.8 CPU-s of a compile; docs/performance.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collections off inside the block; on again after it only if they were on before (nesting)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
