"""Packaging: the no-compiler fallback, the optional build in setup.py, the aarch64 cross build."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_without_the_c_core_the_package_runs_on_python_with_one_warning(tmp_path):
    code = (
        "import sys; sys.modules['firmware_sim._native'] = None\n"
        "from firmware_sim import Firmware, SimPoint\n"
        "pts = [SimPoint(device='d', name='x', signal={'kind': 'sine', 'period': 5})]\n"
        "a = Firmware(pts); b = Firmware(pts); a.tick(10.0)\n"
        "print(a.backend, b.backend, round(a.value(0), 4))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("GRIDGATE_FIRMWARE_BACKEND", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["python", "python", "0.0"]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "C core not built" in lines[0], r.stderr


def _setup_tree(tmp_path: Path) -> Path:
    """setup.py and the sources, without pyproject.toml (whose metadata needs a newer setuptools)."""
    shutil.copy(ROOT / "setup.py", tmp_path / "setup.py")
    (tmp_path / "firmware_sim").mkdir()
    shutil.copy(ROOT / "firmware_sim" / "build_native.py", tmp_path / "firmware_sim")
    shutil.copytree(ROOT / "firmware_sim" / "csrc", tmp_path / "firmware_sim" / "csrc")
    (tmp_path / "gateway" / "site").mkdir(parents=True)
    shutil.copy(ROOT / "gateway" / "site" / "_yamlfast.c", tmp_path / "gateway" / "site")
    (tmp_path / "gateway" / "northbound").mkdir()
    shutil.copy(ROOT / "gateway" / "northbound" / "_records.c", tmp_path / "gateway" / "northbound")
    return tmp_path


def test_setup_skips_the_extension_without_a_compiler(tmp_path):
    d = _setup_tree(tmp_path)
    env = dict(os.environ, CC="/nonexistent/cc")
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", "lib"], cwd=d, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "WARNING: firmware_sim C core not built" in r.stderr
    assert "WARNING: gateway.site._yamlfast YAML builder (needs libyaml-dev) not built" in r.stderr
    assert "WARNING: the spool's C record encoder (needs zlib's header) not built" in r.stderr
    assert not glob.glob(str(d / "lib" / "gateway" / "northbound" / "_records*.so"))
    assert not glob.glob(str(d / "lib" / "firmware_sim" / "_native*.so"))
    assert not glob.glob(str(d / "lib" / "gateway" / "site" / "_yamlfast*.so"))


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_setup_builds_an_abi3_extension(tmp_path):
    d = _setup_tree(tmp_path)
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", "lib"], cwd=d,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert glob.glob(str(d / "lib" / "firmware_sim" / "_native.abi3.so")), os.listdir(d / "lib" / "firmware_sim")
    if Path("/usr/include/yaml.h").exists():  # libyaml-dev (the CI installs it)
        assert glob.glob(str(d / "lib" / "gateway" / "site" / "_yamlfast.abi3.so")), r.stderr
    if Path("/usr/include/zlib.h").exists():  # zlib1g-dev (python3-dev brings it)
        assert glob.glob(str(d / "lib" / "gateway" / "northbound" / "_records.abi3.so")), r.stderr


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None, reason="gcc-aarch64-linux-gnu not installed")
def test_cross_compile_for_aarch64(tmp_path):
    r = subprocess.run(["sh", str(ROOT / ".ci" / "cross-aarch64.sh"), str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "ggfw-aarch64.o").read_bytes()[:4] == b"\x7fELF"
    if Path("/usr/include/yaml.h").exists():
        assert (tmp_path / "yamlfast-aarch64.o").read_bytes()[18:20] == b"\xb7\x00", r.stderr
    if Path("/usr/include/zlib.h").exists():
        assert (tmp_path / "records-aarch64.o").read_bytes()[18:20] == b"\xb7\x00", r.stderr  # EM_AARCH64
    assert b"\xb7\x00" == (tmp_path / "ggfw-aarch64.o").read_bytes()[18:20]  # e_machine EM_AARCH64
