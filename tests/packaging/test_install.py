"""Installed like a product: sdist and wheel built, the wheel installed into a fresh virtual environment,
and the demo run from an empty directory, finding the shipped example site and profiles by name."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:  # noqa: ANN001
    """A fresh venv with only the built wheel of gridgate; its dependencies come from the test venv
    through a path entry (not its .pth hooks, so the editable source tree stays invisible)."""
    pytest.importorskip("build", reason="needs the `build` frontend (pip install -e .[test])")
    tmp = tmp_path_factory.mktemp("install")
    dist = tmp / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    wheels, sdists = list(dist.glob("gridgate-*.whl")), list(dist.glob("gridgate-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    purelib = Path(subprocess.run([venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (purelib / "zz_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    r = subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", "--no-deps", str(wheels[0])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return venv


def _run(venv: Path, cwd: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRIDGATE_CONFIG_DIR")}
    return subprocess.run([str(venv / "bin/gridgate"), *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_the_wheel_holds_the_product_and_none_of_the_source_tree(installed: Path, tmp_path: Path) -> None:
    code = ("import gateway, devices, firmware_sim, gridgate_configs, json; "
            "from gateway import shipped; from firmware_sim import backend; "
            "print(json.dumps([gateway.__file__, devices.__file__, str(shipped.shipped_dir()), "
            "str(shipped.find('wan-cellular', 'profile')), str(shipped.find('feeder-fault-trip', 'scenario'))]))")
    r = subprocess.run([installed / "bin/python", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    paths = json.loads(r.stdout)
    assert all(str(installed) in p for p in paths), paths  # nothing from the checkout
    assert all(Path(p).exists() for p in paths)
    if Path("/usr/include/yaml.h").exists():  # the wheel carries the C YAML builder, and the loader uses it
        code = "from gateway.site import load; print(load._fast_load is not None, load._fast_load('a: [1, x]'))"
        r = subprocess.run([installed / "bin/python", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.stdout.split(None, 1) == ["True", "{'a': [1, 'x']}\n"], r.stderr
    v = _run(installed, tmp_path, "--version")
    assert v.returncode == 0 and v.stdout.startswith("gridgate ")


def test_demo_runs_from_an_empty_directory(installed: Path, tmp_path: Path) -> None:
    r = _run(installed, tmp_path, "demo", "--duration", "10", "--no-live", "--json", timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert len(summary["devices_emulated"]) >= 9 and not summary["devices_skipped"], summary
    assert summary["values_received"] > 50 and summary["measurements_seen"] >= 90


def test_init_copies_the_shipped_files_and_a_user_file_overrides_the_shipped_one(installed: Path, tmp_path: Path) -> None:
    r = _run(installed, tmp_path, "init")
    assert r.returncode == 0, r.stderr
    site_file = tmp_path / "configs" / "primary-substation.yaml"
    assert site_file.is_file() and (tmp_path / "configs/profiles/wan-cellular.yaml").is_file()
    data = yaml.safe_load(site_file.read_text())
    data["site"]["name"] = "MYSITE"
    site_file.write_text(yaml.safe_dump(data, sort_keys=False))
    r = _run(installed, tmp_path, "validate", "--json", str(site_file))
    assert r.returncode == 0 and json.loads(r.stdout)["site"] == "MYSITE", r.stdout + r.stderr
    again = _run(installed, tmp_path, "init")
    assert again.returncode == 1 and "use --force" in again.stderr
