"""Build the C core in place when missing or stale, so the C-vs-Python tests really run C.

Without a compiler the C tests are skipped with the reason, unless GRIDGATE_REQUIRE_NATIVE=1
(CI), where a missing C core is an error.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile

import pytest

from firmware_sim import build_native

_error = ""
with open(os.path.join(tempfile.gettempdir(), "gridgate-firmware-build.lock"), "w") as _lock:
    fcntl.flock(_lock, fcntl.LOCK_EX)  # parallel test runs build once
    try:
        if build_native.is_stale():
            build_native.build_inplace()
    except (subprocess.CalledProcessError, OSError) as e:
        _error = f"{e}\n{getattr(e, 'stderr', '')}"
    finally:
        fcntl.flock(_lock, fcntl.LOCK_UN)

from firmware_sim import backend  # noqa: E402  (loads the extension lazily, after the build)

NATIVE = backend.native_available()
if not NATIVE and os.environ.get("GRIDGATE_REQUIRE_NATIVE") == "1":
    raise RuntimeError(f"firmware_sim C core required but not built: {_error or backend._import_error}")


@pytest.fixture(params=["c", "python"])
def backend_name(request) -> str:
    """Run a test on both backends (C skipped, with the reason, when not built)."""
    if request.param == "c" and not NATIVE:
        pytest.skip(f"firmware_sim C core not built: {_error[:200]}")
    return request.param


@pytest.fixture
def c_backend() -> str:
    if not NATIVE:
        pytest.skip(f"firmware_sim C core not built: {_error[:200]}")
    return "c"
