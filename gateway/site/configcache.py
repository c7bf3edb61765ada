"""Parsed-YAML cache for large site files (like ``.pyc`` for configs).

Parsing YAML is most of a large gateway's start-up: about 4 s for a 10,000-point site
(3 MB) and 20 s for 50,000 points on a Raspberry-Pi-class CPU, against 0.5 s to
validate the parsed data. The parsed data (plain dicts, lists and scalars) is kept in
``marshal`` format under a name derived from the SHA-256 of the file's bytes, so an
edited file never meets a stale entry, and validation still runs on every load.
``marshal`` (not pickle) cannot execute code, and entries are readable by their owner only.

Location: ``$GRIDGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/gridgate``, else ``~/.cache/gridgate``;
``GRIDGATE_CACHE_DIR=off`` disables the cache. Any failure to read or write an entry
falls back to parsing (a damaged entry is logged as a warning): the cache can only make loading faster.

The same directory keeps ``tables-*`` entries: the validated, compiled runtime tables of a site
(gateway/startup.py), so a restart neither parses nor validates an unchanged file.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import mmap
import os
from functools import cache
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

#: bump when the cached form or the YAML loading rules change
FORMAT = 1
#: entries kept; older ones are removed when a new one is written
KEEP = 8


def cache_dir() -> Path | None:
    env = os.environ.get("GRIDGATE_CACHE_DIR")
    if env == "off":
        return None
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gridgate"


def _entry(raw: bytes) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    import yaml  # here: a restart from the compiled tables (tables_entry) needs no YAML

    digest = hashlib.sha256(raw).hexdigest()
    return d / f"config-{digest}-f{FORMAT}-y{yaml.__version__}.marshal"


def get(raw: bytes) -> Any | None:
    """The parsed data of a file with these bytes, if cached."""
    return read_entry(_entry(raw))


def put(raw: bytes, data: Any) -> None:
    """Keep the parsed data (only plain YAML data; anything marshal cannot hold is simply not cached)."""
    write_entry(_entry(raw), data)


def tables_entry(digest: str, build: str) -> Path | None:
    """Where the compiled runtime tables of a file with this SHA-256 (hex) are kept (gateway/startup.py);
    ``build`` names the code that compiled them (version, sources), so other code never reads them."""
    d = cache_dir()
    if d is None:
        return None
    return d / f"tables-{digest}-{build}.marshal"


def read_entry(p: Path | None, parse: Callable[[memoryview], Any] = marshal.loads) -> Any | None:
    """``parse`` of an entry's payload, or None: missing, unreadable, damaged or refused (``parse`` raises
    ValueError, TypeError or EOFError) entries are logged and never used.

    Read through a memory map, not into a bytes object: a 10,000-point site's tables are ~7 MB, and the
    copies (read, slice) stayed in a gateway's RSS as freed heap (measured 52 → 44 MB after the load)."""
    if p is None:
        return None
    try:
        with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            try:
                if len(view) < 32 or hashlib.sha256(view[32:]).digest() != view[:32]:  # torn or damaged
                    log.warning("config cache: ignoring damaged %s (checksum); the file is parsed again", p)
                    return None
                try:
                    with view[32:] as payload:  # released on every path: the map cannot close while exported
                        return parse(payload)
                except (EOFError, ValueError, TypeError) as e:
                    log.warning("config cache: ignoring unreadable %s (%s); the file is parsed again", p, str(e))
                    return None
            finally:
                view.release()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # ValueError: an empty file cannot be mapped
        log.warning("config cache: ignoring unreadable %s (%s)", p, e)
        return None


def write_entry(p: Path | None, data: Any = None, blob: bytes | None = None) -> None:
    """Keep ``data`` (or its ``marshal`` form ``blob``, when the caller has it already)."""
    if p is None:
        return
    if blob is None:
        try:
            blob = marshal.dumps(data)
        except ValueError as e:
            log.debug("config cache: data not cacheable (%s)", e)
            return
    try:
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(hashlib.sha256(blob).digest())
            f.write(blob)
        os.replace(tmp, p)  # readers never see a half-written entry
        _trim(p.parent, p.name.split("-", 1)[0])
    except OSError as e:
        log.debug("config cache: cannot write %s (%s)", p, e)


def _trim(d: Path, kind: str = "config") -> None:
    entries = sorted(d.glob(f"{kind}-*.marshal"), key=lambda q: q.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)


@cache
def code_id(packages: tuple[str, ...], salt: str = "") -> str:
    """Names the code that compiles cached entries (these ``packages`` of gridgate, pydantic, Python): an
    edited or upgraded one never reads another's entries (the gateway's tables, gateway/startup.py; the
    emulator's compiled sites, devices/emucache.py). From file sizes and mtimes, not package metadata or
    imports: importlib.metadata alone is 4.6 MB and pydantic ~10 MB of the RSS a restart from the cache saves."""
    import importlib
    import importlib.util
    import sys

    h = hashlib.sha256(f"{salt} {sys.version}".encode())
    roots = [Path(importlib.import_module(pkg).__file__ or "").parent for pkg in packages]
    for dist in ("pydantic", "pydantic_core"):  # the validators that made the entries (not imported here)
        spec = importlib.util.find_spec(dist)
        if spec is not None and spec.origin:
            roots.append(Path(spec.origin).parent)
    for root in roots:
        h.update(f"{root.name}\n".encode())
        for p in sorted(root.rglob("*.py")) + sorted(root.glob("*.so")):
            st = p.stat()
            h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]
