"""The fault API's state files (URL + token for the CLI), one per emulator instance, kept where
only this user can reach them.

Each running emulator writes ``<runtime dir>/gridgate/faultapi/<name>.json``: the runtime dir is
``$XDG_RUNTIME_DIR``, else a ``/tmp/gridgate-<uid>`` directory that must be ours and 0700; the
name is ``--name`` or the config file's stem (``primary-substation``), so two emulators on one
machine never share a file and ``gridgate fault`` can say which one it addresses. A file is created
with ``O_EXCL|O_NOFOLLOW`` and mode 0600, so a pre-planted file or symlink is never followed or
truncated, and it is removed on exit. A stale file from a crashed emulator (dead pid) is replaced
when written and removed when the instances are listed.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

#: an instance name: a file name without surprises (no path separators, no leading dot)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class StateFileError(OSError):
    """The state file or its directory is not safe to use; the message names the path and the fix."""


class StateFileBusy(StateFileError):
    """The state file exists and is not a stale one of ours (another emulator's, or something planted)."""


def _private_dir(d: Path, create: bool) -> Path:
    if create:
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return d  # the client side: nothing running yet
    if create and stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077:
        _tighten(d)  # ours, left group/other-accessible by an older gridgate: make it private
        st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise StateFileError(
            f"{d} is not a private directory of this user (must be a real directory owned by uid {os.getuid()}, "
            "mode 0700); remove it or set XDG_RUNTIME_DIR"
        )
    return d


def _tighten(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def _base() -> tuple[Path, bool]:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime), True
    return Path(f"/tmp/gridgate-{os.getuid()}"), False


def state_path() -> Path:
    """Where the default state file goes (no checks; see ``default_state_file``)."""
    return _base()[0] / "gridgate" / "faultapi.json"


def default_state_file(create: bool = False) -> Path:
    """``<runtime dir>/gridgate/faultapi.json``, its directories checked private (``create``: made so)."""
    base, runtime = _base()
    if not runtime:
        _private_dir(base, create)
    return _private_dir(base / "gridgate", create) / "faultapi.json"


def instance_dir(create: bool = False) -> Path:
    """``<runtime dir>/gridgate/faultapi/``, every directory on the way checked private (``create``: made so)."""
    return _private_dir(default_state_file(create).parent / "faultapi", create)


def check_name(name: str) -> str:
    """``name`` if it is a usable instance name, else ValueError saying what is allowed."""
    if not NAME_RE.match(name):
        raise ValueError(f"--name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def name_for(config: str | Path | None) -> str:
    """The default instance name: the config file's stem, made a valid name (``emulator`` without one)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(config).stem if config else "").lstrip("._-")[:64]
    return stem or "emulator"


def instance_file(name: str, create: bool = False) -> Path:
    return instance_dir(create) / f"{check_name(name)}.json"


def running_instances() -> list[dict[str, Any]]:
    """The state of every emulator of this user that is running (sorted by name); stale files are removed."""
    try:
        d = instance_dir()
        entries = sorted(d.glob("*.json"))
    except OSError:
        return []
    out = []
    for f in entries:
        data = _read(f)
        if data is None:
            continue  # not a regular file of ours: never trusted, never removed
        if not _alive(data.get("pid")) or not {"url", "token"} <= set(data):
            try:
                os.unlink(f)  # a crashed emulator's leftover
            except OSError:
                pass
            continue
        out.append({**data, "name": data.get("name") or f.stem, "state_file": str(f)})
    return out


def _read(path: Path) -> dict[str, Any] | None:
    """The state at ``path`` if it is a regular file of ours (never through a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
        try:
            data = json.loads(f.read(65536))
        except ValueError:
            return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Create ``path`` exclusively (0600, no symlink following) with ``data``; replace only a stale one of ours."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in (1, 2):
        try:
            fd = os.open(path, flags, 0o600)
            break
        except FileExistsError:
            old = _read(path)
            stale = old is not None and (not _alive(old.get("pid")) or old.get("pid") == os.getpid())
            if attempt == 1 and stale:
                os.unlink(path)  # a crashed emulator's leftover (unlink never follows a link)
                continue
            who = f"a running emulator (pid {old.get('pid')})" if old else "not a state file of this user (a symlink?)"
            raise StateFileBusy(
                f"fault API state file {path} already exists and belongs to {who}; "
                "stop that emulator, remove the file, or give this one its own state file"
            ) from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(data, f)


def remove_state(path: Path, token: str) -> None:
    """Remove ``path`` if it is still ours (carries ``token``)."""
    old = _read(path)
    if old is not None and old.get("token") == token:
        try:
            os.unlink(path)
        except OSError:
            pass
