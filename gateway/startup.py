"""Start-up of ``gridgate gateway``: the site file → compact runtime tables and the catalog, cached.

The pydantic model validates the file and is then dropped: what the gateway keeps are the runtime
twins of gateway/site/tables.py (~¼ of the model's memory) and the catalog. Large files are loaded
in a forked child that hands back only the encoded tables and catalog rows (marshal bytes), so the
parent never holds the model or PyYAML's node tree.

The tables and the catalog of a large file are cached under the SHA-256 of its bytes and the code
that compiled them (:func:`build_id`: the Python version and the size and mtime of every source file
of gridgate, pydantic and pydantic-core), in gateway/site/configcache.py's directory with its rules
(checksummed, owner-only, ``GRIDGATE_CACHE_DIR=off``). An edited file has another hash, so it is
parsed and validated again; a damaged or stale entry is logged and ignored, never trusted. A restart
of an unchanged 10,000-point site maps one ~7 MB entry (mostly the catalog's JSON) instead of
parsing and validating 3 MB of YAML: 0.3 CPU-s instead of 1.9, and no pydantic import.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import sys
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from gateway.site import configcache
from gateway.site.gcpause import gc_paused
from gateway.site.isolate import ISOLATE_BYTES, leave, start_child

if TYPE_CHECKING:  # imported where a file is validated (pydantic, the site models): never on a restart from the cache
    from gateway.cim import CatalogEntry
    from gateway.config import Config
    from gateway.site.tables import Encoder

# gateway.cim and gateway.site.tables (and dataclasses, inspect, uuid, datetime with them, ~0.02 s) are imported
# where used: a first start forks its loader child right after this module, and the child imports them
# with pydantic (which needs most of them too), the gateway while the child compiles

log = logging.getLogger(__name__)

#: bump when the cached form (tables and catalog rows) changes
FORMAT = 2


@cache
def _row() -> tuple[str, ...]:
    """The catalog row: every CatalogEntry field the catalog builds, in order (provenance, the last, is filled per value)."""
    from dataclasses import fields

    from gateway.cim import CatalogEntry

    names = tuple(f.name for f in fields(CatalogEntry))
    assert names[-1] == "provenance"  # CatalogEntry(*row) relies on it
    return names[:-1]


class GatewaySite:
    """What a gateway is built from: the site's runtime tables (typed as the model they mirror) and its catalog."""

    __slots__ = ("cfg", "catalog", "source")

    def __init__(self, cfg: Config, catalog: dict[str, CatalogEntry], source: str) -> None:
        self.cfg = cfg
        self.catalog = catalog
        #: "cache" (restart of an unchanged file), "child" or "process" (parsed and validated)
        self.source = source


def load_gateway_site(path: str | Path, isolate: bool | None = None,
                      meanwhile: Callable[[], object] | None = None) -> GatewaySite:
    """Load, validate and compile a site for ``gridgate gateway``; raises :class:`ConfigError`.

    ``meanwhile``: run in this process while the loader child compiles (a first start of a large file),
    e.g. importing what the gateway runs: that work leaves the path to the first value where a core is
    free. It must not act on the site (nothing is validated yet) and its errors are the caller's."""
    try:
        with open(path, "rb") as f:  # hashed as it is read: a 50,000-point file is 15 MB
            size = os.fstat(f.fileno()).st_size
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        size, digest = 0, None  # load_config names the problem
    if isolate is None:
        isolate = size > ISOLATE_BYTES
    entry = configcache.tables_entry(digest, build_id()) if isolate and digest is not None else None
    cached = configcache.read_entry(entry, lambda view: _unpack(view, "cache"))
    if cached is not None:
        return cached
    if isolate:
        child = start_child(compile_site, path, True, True)
        try:
            if meanwhile is not None:
                meanwhile()
            blob = child.result()
        finally:
            child.kill()  # interrupted, or ``meanwhile`` failed: the child stops (nothing once its result is taken)
    else:
        blob = compile_site(path, False)
    # written while the result is decoded: hashing and writing its ~7 MB (10,000 points) release the GIL, so on a
    # free core the ~0.015 s of the write leave the way to the first value; joined before the site is handed out
    writer = None
    if entry is not None:
        writer = threading.Thread(target=configcache.write_entry, args=(entry,), kwargs={"blob": blob},
                                  name="tables-cache-write")
        writer.start()
    try:
        with memoryview(blob) as view:
            return _unpack(view, "child" if isolate else "process")
    finally:
        if writer is not None:
            writer.join()


def compile_site(path: str | Path, cache_yaml: bool, parallel: bool = False) -> bytes:
    """Validate the file, build the catalog and encode what the gateway keeps (in the loader child for a
    large file; ``cache_yaml``: reuse or keep the parsed YAML too, for an edited gridgate; ``parallel``:
    in two processes where that is worth it, gateway/splitcompile.py).

    The form: an 8-byte length, a header ``(FORMAT, class table, the site without its devices, chunk
    lengths)``, then one ``marshal`` chunk per device ``(device, its catalog rows)``: the gateway decodes
    a device at a time, so what it holds besides the result is one device's encoding, not the site's
    (50,000 points: ~25 MB of tuples that stayed in the RSS as freed heap)."""
    from gateway.site.load import UNREAD, read_data, whole_file_is_faster

    data: Any = UNREAD
    # the parsed YAML kept too only where PyYAML parses (~0.85 CPU-s at 10,000 points): read back it saves ~0.05 of
    # the C builder's 0.08 CPU-s on the next first start after an upgrade, and writing it costs every first start
    # ~0.015 s (marshal, hash, write; Stop 26)
    cache_yaml = cache_yaml and not whole_file_is_faster()
    with gc_paused():  # ~40 objects per point, none garbage: collections cost 0.4 of 1.8 CPU-s at 10,000 points
        if parallel:
            from gateway.splitcompile import compile_split, compile_split_data, worth_splitting

            if worth_splitting():
                if whole_file_is_faster():  # parsed whole (C), the data halved: a YAML error is raised here, as whole
                    data = read_data(path, cache_yaml)
                    leave(data)
                    blob = compile_split_data(data)
                else:
                    blob = compile_split(path)
                if blob is not None:
                    return blob
        return _compile_serial(path, cache_yaml, data)


def _compile_serial(path: str | Path, cache_yaml: bool, data: Any) -> bytes:
    from gateway.config import Config, drop_emulator_fields
    from gateway.site.load import UNREAD, load_model, read_data
    from gateway.site.tables import Encoder

    if data is UNREAD:
        data = read_data(path, cache_yaml)
    cfg = load_model(path, Config, data=data)
    drop_emulator_fields(cfg, fields_sets=False)
    leave(data, cfg)  # in the loader child: never freed (isolate.leave)
    head, classes, chunks = encode_site(cfg, Encoder())
    return assemble(head, classes, chunks)


def encode_site(cfg: Config, enc: Encoder) -> tuple[Any, tuple, list[bytes]]:
    """(the site without its devices, the class table, one ``marshal`` chunk per device with its catalog rows)."""
    from gateway.cim import build_catalog

    catalog = build_catalog(cfg)
    rows: dict[str, list[tuple]] = {}
    row = _row()
    for e in catalog.values():  # short strings (device, kind, type...) once each: marshal writes equal ones apart
        rows.setdefault(e.device, []).append(tuple(_share(getattr(e, f)) for f in row))
    chunks = [marshal.dumps((enc.value(d), tuple(rows.get(d.name, ())))) for d in cfg.devices]
    leave(catalog, rows)
    return enc.value(cfg, skip=frozenset({"devices"})), enc.classes(), chunks


def assemble(head: Any, classes: tuple, chunks: list[bytes]) -> bytes:
    """The compiled site's bytes (:func:`_unpack` reads them)."""
    blob = marshal.dumps((FORMAT, head, tuple(map(len, chunks)), classes))
    return len(blob).to_bytes(8, "little") + blob + b"".join(chunks)


def _share(v: Any) -> Any:
    return sys.intern(v) if type(v) is str and len(v) <= 64 else v


def _unpack(view: memoryview, source: str) -> GatewaySite:
    """:func:`compile_site`'s bytes → the site; :class:`TablesError` for anything that does not fit."""
    from gateway.cim import CatalogEntry
    from gateway.site.tables import Decoder, TablesError

    try:
        n = int.from_bytes(view[:8], "little")
        with view[8:8 + n] as part:
            fmt, head, lengths, classes = marshal.loads(part)
    except (EOFError, ValueError, TypeError) as e:
        raise TablesError(f"not a compiled site ({e})") from None
    if fmt != FORMAT:
        raise TablesError(f"format {fmt!r}, expected {FORMAT}")
    if not isinstance(lengths, tuple) or 8 + n + sum(lengths) != len(view):
        raise TablesError("chunk lengths do not add up to the entry's size")
    dec = Decoder(classes)
    fields = _row()
    cfg = dec.value(head)
    devices = cfg.devices
    catalog: dict[str, CatalogEntry] = {}
    at = 8 + n
    for size in lengths:
        with view[at:at + size] as part:
            try:
                device, rows = marshal.loads(part)
            except (EOFError, ValueError, TypeError) as e:
                raise TablesError(f"damaged device chunk ({e})") from None
        at += size
        devices.append(dec.value(device))
        for row in rows:
            if len(row) != len(fields):
                raise TablesError(f"a catalog row of {len(row)} values, expected {len(fields)}")
            catalog[row[0]] = CatalogEntry(*row)
        del device, rows  # before the next chunk: one device's encoding at a time
    return GatewaySite(cfg, catalog, source)


def build_id() -> str:
    """Names the code that compiles tables (:func:`configcache.code_id` of gateway and firmware_sim, and this
    module's FORMAT): an edited or upgraded gridgate, pydantic or Python never reads another's entries."""
    return configcache.code_id(("gateway", "firmware_sim"), salt=str(FORMAT))
