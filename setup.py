"""Optional C extension of firmware_sim (the sampling core); everything else is in pyproject.toml.

Built as a Limited-API (abi3, cp311) extension unless the interpreter is free-threaded.
Without a working compiler the build is skipped with one warning and firmware_sim runs on
its pure-Python reference implementation. No -march=native: wheels are distributed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

_spec = importlib.util.spec_from_file_location("build_native", Path(__file__).parent / "firmware_sim" / "build_native.py")
build_native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_native)


class OptionalBuildExt(build_ext):
    """Build the extension if possible; never fail the install because of it."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # no compiler at all (DistutilsPlatformError and friends)
            self._skip(e)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # compiler present but failing
            self._skip(e)

    @staticmethod
    def _skip(e: Exception) -> None:
        print(
            f"WARNING: firmware_sim C core not built ({type(e).__name__}: {e}); "
            "the pure-Python reference backend will be used",
            file=sys.stderr,
        )


setup(
    ext_modules=[build_native.extension()],
    cmdclass={"build_ext": OptionalBuildExt},
    options={} if build_native.FREE_THREADED else {"bdist_wheel": {"py_limited_api": "cp311"}},
)
