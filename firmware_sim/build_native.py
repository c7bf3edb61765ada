"""How to build the optional C core; shared by setup.py and the in-place dev build.

Importable by file path without the firmware_sim package (setup.py runs in an isolated
build environment without pydantic). ``python firmware_sim/build_native.py`` builds the
extension next to the sources, for tests and benchmarks run from a checkout; it runs
setuptools from a scratch directory so the repository's pyproject.toml is not involved.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
CFLAGS = ["-std=c99", "-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall"]
SOURCES = ["csrc/ggfw.c", "csrc/ggplant.c", "csrc/_native.c"]
HEADERS = ["ggfw.h", "ggplant.h", "ggrng.h"]


def extension(prefix: str = "firmware_sim"):
    """The setuptools Extension; ``prefix`` is the source folder relative to setup.py's cwd."""
    from setuptools import Extension

    return Extension(
        "firmware_sim._native",
        sources=[f"{prefix}/{s}" for s in SOURCES],
        depends=[f"{prefix}/csrc/{h}" for h in HEADERS],
        include_dirs=[f"{prefix}/csrc"],
        extra_compile_args=CFLAGS,
        libraries=["m"],
        py_limited_api=not FREE_THREADED,
        define_macros=[] if FREE_THREADED else [("Py_LIMITED_API", "0x030B0000")],
    )


def built_module() -> Path | None:
    found = sorted(glob.glob(str(HERE / "_native*.so")))
    return Path(found[0]) if found else None


def is_stale() -> bool:
    so = built_module()
    if so is None:
        return True
    newest = max((HERE / s).stat().st_mtime for s in [*SOURCES, *(f"csrc/{h}" for h in HEADERS)])
    return so.stat().st_mtime < newest


def build_inplace() -> Path:
    """Compile firmware_sim/_native*.so in place; raises CalledProcessError with the compiler output."""
    with tempfile.TemporaryDirectory(prefix="ggfw-build-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(HERE / "csrc", src / "csrc")
        script = (
            "import sys; sys.path.insert(0, %r)\n"
            "from build_native import extension\n"
            "from setuptools import setup\n"
            "setup(name='firmware-sim-native', ext_modules=[extension('src')],\n"
            "      script_args=['-q', 'build_ext', '--build-lib', 'lib', '--build-temp', 'obj'])\n"
        ) % str(HERE)
        subprocess.run([sys.executable, "-c", script], cwd=tmp, check=True, capture_output=True, text=True)
        (so,) = glob.glob(os.path.join(tmp, "lib", "firmware_sim", "_native*.so"))
        for old in glob.glob(str(HERE / "_native*.so")):
            os.unlink(old)
        dest = HERE / os.path.basename(so)
        shutil.copy2(so, dest.with_suffix(".tmp"))
        os.replace(dest.with_suffix(".tmp"), dest)
        return dest


if __name__ == "__main__":
    try:
        print(build_inplace())
    except subprocess.CalledProcessError as e:
        sys.exit(f"build failed:\n{e.stdout}\n{e.stderr}")
