"""Packages and the optional C extensions (firmware_sim's sampling core, the spool's record encoder);
metadata is in pyproject.toml.

The source layout's top-level folders are installed as they are (gateway, devices, firmware_sim), and
the shipped configs (configs/) as the package data ``gridgate_configs``, so an installed gridgate finds
the example site, the network profiles and the scenarios by name from any directory.

Built as Limited-API (abi3, cp311) extensions unless the interpreter is free-threaded.
Without a working compiler (or zlib's header, for the spool's encoder) a build is skipped with one
warning and the pure-Python implementation is used (firmware_sim's reference backend, the spool's
Python record loop). No -march=native: wheels are distributed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
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
            self._skip(e, ext.name)

    @staticmethod
    def _skip(e: Exception, name: str = "firmware_sim._native") -> None:
        what = ("firmware_sim C core", "the pure-Python reference backend") if name == "firmware_sim._native" else (
            "the spool's C record encoder", "its Python loop")
        print(f"WARNING: {what[0]} not built ({type(e).__name__}: {e}); {what[1]} will be used", file=sys.stderr)


def spool_records() -> Extension:
    """The spool's record encoder (gateway/northbound/_records.c; segment_log.py falls back to Python without it)."""
    limited = not build_native.FREE_THREADED
    return Extension(
        "gateway.northbound._records",
        sources=["gateway/northbound/_records.c"],
        extra_compile_args=["-std=c99", "-O2", "-Wall"],
        libraries=["z"],
        py_limited_api=limited,
        define_macros=[("Py_LIMITED_API", "0x030B0000")] if limited else [],
    )


setup(
    packages=find_packages(include=["gateway", "gateway.*", "devices", "devices.*", "firmware_sim", "firmware_sim.*"])
    + ["gridgate_configs"],
    package_dir={"gridgate_configs": "configs"},
    package_data={
        "gridgate_configs": ["*.yaml", "profiles/*.yaml", "scenarios/*.yaml"],
        "firmware_sim": ["csrc/*.c", "csrc/*.h", "README.md"],
        "gateway": ["protocols/*/sample-site.yaml", "protocols/*/README.md", "hmi/static/**/*"],
    },
    ext_modules=[build_native.extension(), spool_records()],
    cmdclass={"build_ext": OptionalBuildExt},
    options={} if build_native.FREE_THREADED else {"bdist_wheel": {"py_limited_api": "cp311"}},
)
