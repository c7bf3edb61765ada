"""Choose the sampler: the C core when it is built, else the Python reference (one warning).

The extension is imported on first use, so a dev build (build_native.py) can still
replace it after ``import firmware_sim``.
"""

from __future__ import annotations

import logging
import os

from firmware_sim.reference import RefSampler

log = logging.getLogger("firmware_sim")
_warned = False
_native = None
_import_error = ""


def _load():
    global _native, _import_error
    if _native is None:
        try:
            from firmware_sim._native import Sampler
        except ImportError as e:  # not built (no compiler at install time)
            _import_error = str(e)
            return None
        _native = Sampler
    return _native


def native_available() -> bool:
    return _load() is not None


def sampler_class(backend: str = "auto"):
    """``backend``: "auto" (env GRIDGATE_FIRMWARE_BACKEND, else C if built), "c" or "python"."""
    global _warned
    if backend == "auto":
        backend = os.environ.get("GRIDGATE_FIRMWARE_BACKEND", "auto").lower() or "auto"
    if backend not in ("auto", "c", "python"):
        raise ValueError(f"backend must be 'auto', 'c' or 'python', got {backend!r}")
    if backend == "python":
        return RefSampler, "python"
    native = _load()
    if native is not None:
        return native, "c"
    if backend == "c":
        raise RuntimeError(
            f"the firmware_sim C core is not built ({_import_error}); "
            "reinstall with a C compiler (pip install .) or run: python firmware_sim/build_native.py"
        )
    if not _warned:
        _warned = True
        log.warning("firmware_sim: C core not built, running the pure-Python reference (about 200x slower)")
    return RefSampler, "python"
