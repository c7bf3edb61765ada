"""Where the shipped example site, network profiles and scenarios are, and how names find them.

They live in the source tree's ``configs/`` and are installed as the package data ``gridgate_configs``
(setup.py), so a wheel or pipx install finds them from any directory. A user's own file of the same
name overrides the shipped one. Search order for a name (not a path):

1. ``$GRIDGATE_CONFIG_DIR`` (e.g. ``/etc/gridgate`` for the service),
2. ``./configs`` in the working directory (what ``gridgate init`` writes, and a source checkout),
3. the shipped copy.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

EXAMPLE_SITE = "primary-substation.yaml"
KINDS = {"site": "", "profile": "profiles", "scenario": "scenarios"}


def shipped_dir() -> Path:
    """The installed (or source-tree) directory of the shipped configs."""
    try:
        root = resources.files("gridgate_configs")
        path = Path(str(root))
        if (path / EXAMPLE_SITE).is_file():
            return path
    except ModuleNotFoundError:
        pass
    here = Path(__file__).resolve().parent.parent / "configs"  # a source checkout without an install
    return here


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("GRIDGATE_CONFIG_DIR"):
        dirs.append(Path(os.environ["GRIDGATE_CONFIG_DIR"]))
    dirs.append(Path.cwd() / "configs")
    dirs.append(shipped_dir())
    return dirs


def find(name_or_path: str | Path, kind: str = "site") -> Path:
    """A path as given if it names a file; else ``NAME`` (with or without .yaml) of ``kind`` along the
    search order. Returns the shipped location when nothing is found (its error names it)."""
    p = Path(name_or_path)
    if p.is_file() or (p.suffix in (".yaml", ".yml") and p.parent != Path(".")):
        return p
    file = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    for d in search_dirs():
        candidate = d / KINDS[kind] / file
        if candidate.is_file():
            return candidate
    return shipped_dir() / KINDS[kind] / file


def names(kind: str) -> list[str]:
    """Every profile or scenario name along the search order (each once)."""
    seen: dict[str, None] = {}
    for d in search_dirs():
        for f in sorted((d / KINDS[kind]).glob("*.yaml")):
            seen.setdefault(f.stem, None)
    return sorted(seen)


def default_site() -> Path:
    return find(EXAMPLE_SITE, "site")


def init(target: Path, force: bool = False) -> list[Path]:
    """Copy the shipped site, profiles and scenarios into ``target/configs`` for editing; refuses to
    overwrite a file unless ``force``. Returns the files written."""
    src = shipped_dir()
    out = target / "configs"
    plan = sorted(src.rglob("*.yaml"))
    clashes = [out / f.relative_to(src) for f in plan if (out / f.relative_to(src)).exists()]
    if clashes and not force:
        raise FileExistsError(f"{clashes[0]} exists (and {len(clashes) - 1} more); use --force to overwrite")
    written = []
    for f in plan:
        dest = out / f.relative_to(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
        written.append(dest)
    return written
