"""Packages and the optional C extension of firmware_sim (the sampling core); metadata is in pyproject.toml.

The source layout's top-level folders are installed as they are (gateway, devices, firmware_sim), and
the shipped configs (configs/) as the package data ``gridgate_configs``, so an installed gridgate finds
the example site, the network profiles and the scenarios by name from any directory.

Built as Limited-API (abi3, cp311) extensions unless the interpreter is free-threaded.
Without a working compiler the build is skipped with one warning and firmware_sim runs on
its pure-Python reference implementation; without libyaml's headers gateway.site._yamlfast is
skipped the same way and site files are read by PyYAML alone; without zlib's the spool's record
encoder, and the spool uses its Python loop. No -march=native: wheels are distributed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, find_namespace_packages, find_packages, setup
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
            self._skip(e, None)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # compiler present but failing
            self._skip(e, ext.name)

    @staticmethod
    def _skip(e: Exception, name: str | None) -> None:
        what = _SKIPPED.get(name, "the C extensions (" + ", ".join(_SKIPPED.values()) + ")")
        print(f"WARNING: {what} not built ({type(e).__name__}: {e}); the pure-Python path will be used", file=sys.stderr)


_SKIPPED = {
    "firmware_sim._native": "firmware_sim C core",
    "gateway.site._yamlfast": "gateway.site._yamlfast YAML builder (needs libyaml-dev)",
    "gateway.northbound._records": "the spool's C record encoder (needs zlib's header)",
}


def optional_extension(name: str, library: str) -> Extension:
    """One of gridgate's own optional C modules (``name``'s .c beside its package), linked with ``library``."""
    return Extension(
        name,
        sources=[name.replace(".", "/") + ".c"],
        extra_compile_args=["-std=c99", "-O2", "-Wall"],
        libraries=[library],
        py_limited_api=not build_native.FREE_THREADED,
        define_macros=[] if build_native.FREE_THREADED else [("Py_LIMITED_API", "0x030B0000")],
    )


CODE = ["gateway", "gateway.*", "devices", "devices.*", "firmware_sim", "firmware_sim.*"]
# the folders that hold only package data (C sources, the mimic's static files, example profiles and
# scenarios) are named too: setuptools warns about every importable folder it is not told about
DATA_ONLY = sorted({p for p in find_namespace_packages(include=CODE) if "__pycache__" not in p} - set(find_packages(include=CODE)))
CONFIGS = ["gridgate_configs"] + [f"gridgate_configs.{d}" for d in ("profiles", "scenarios")]

setup(
    packages=find_packages(include=CODE) + DATA_ONLY + CONFIGS,
    package_dir={"gridgate_configs": "configs"},
    package_data={
        "gridgate_configs": ["*.yaml", "profiles/*.yaml", "scenarios/*.yaml"],
        "firmware_sim": ["csrc/*.c", "csrc/*.h", "README.md"],
        "gateway": ["site/_yamlfast.c", "protocols/*/sample-site.yaml", "protocols/*/README.md", "hmi/static/**/*"],
    },
    ext_modules=[build_native.extension(), optional_extension("gateway.site._yamlfast", "yaml"),
                 optional_extension("gateway.northbound._records", "z")],
    cmdclass={"build_ext": OptionalBuildExt},
    options={} if build_native.FREE_THREADED else {"bdist_wheel": {"py_limited_api": "cp311"}},
)
