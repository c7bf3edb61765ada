"""What ``gridgate emulate`` runs, without the site's config model: the compiled firmware plan and,
per device, what its server needs.

Why: the pydantic model of a site costs ~106 KiB per 20-point Modbus device and the firmware
only needs its compiled arrays (bench/bench_emulator_scale.py; docs/performance.md). The site
is therefore loaded, validated and compiled in a forked child (like large configs in
:func:`gateway.config.load_config`), which hands back only this: polled devices (Modbus) as an
:class:`Endpoint`, event-driven ones (DNP3, IEC 61850, IEC 104: their servers build their
point maps from the model) as their model. CPython keeps freed heap memory, so building the
model in this process and dropping it would not give the memory back.

The plan covers every enabled device of the site even when this process serves only some
(``--device``, a ``--processes`` shard): the firmware's noise is keyed by a point's place in
the whole site's plan, so values stay those of a single process.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pydantic import BaseModel, ConfigDict, Field

from firmware_sim.plan import Plan
from gateway.site.gcpause import gc_paused
from gateway.site.isolate import in_child

if TYPE_CHECKING:
    from devices.scenario.sitetables import SiteTables


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A polled device as its emulated server needs it: where it listens, no point models."""

    name: str
    protocol: str
    kind: str
    host: str
    port: int
    unit_id: int
    connections: Any  # the device's ConnectionOptions; equal ones are one shared object
    points: tuple[str, ...]  # point names
    enabled: bool = True


@dataclass
class EmulatedSite:
    """The devices this process serves, (position in the config's ``devices``, Endpoint or device model),
    the enabled devices of the whole site by name, and the firmware plan of the whole site."""

    devices: list[tuple[int, Any]]
    known: list[str]
    plan: Plan
    seed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    faults: SiteTables | None = None  # what the fault API resolves targets over (``load(faults=True)``)


def load(path: str | Path, seed: int = 0, only: Sequence[str] | None = None,
         shard: tuple[int, int] | None = None, faults: bool = False) -> EmulatedSite:
    """Load, validate and compile the site in a forked child; raises ConfigError / PlanError as loading does.

    ``only``: serve just these devices (names unknown to the site are left to the caller, who
    has ``known``); ``shard`` (I, N): of those, every N-th starting at I; ``faults``: also the
    tables the fault API resolves targets over (:mod:`devices.scenario.sitetables`, ~1 KiB a device)."""
    from devices import emucache

    only = list(only) if only is not None else None
    try:
        raw = Path(path).read_bytes()
    except OSError:
        raw = None  # the loader says what is wrong with the file
    if raw is not None and (site := emucache.get(raw, _options(seed, only, shard, faults))) is not None:
        return site
    return in_child(build, path, seed, only, shard, True, faults)


def _options(seed: int, only: list[str] | None, shard: tuple[int, int] | None, faults: bool = False) -> tuple:
    return (seed, None if only is None else tuple(only), shard) + (("faults",) if faults else ())


def build(path: str | Path, seed: int = 0, only: list[str] | None = None,
          shard: tuple[int, int] | None = None, cache: bool = False, faults: bool = False) -> EmulatedSite:
    """The work of :func:`load` (runs in the child; callable in-process for tests); ``cache``: keep the
    result for the next start (devices/emucache.py).

    The cyclic garbage collector is off meanwhile: validating and compiling allocates a few
    objects per field and keeps nearly all of them, so every collection walks the growing model
    for nothing (3,000 devices: 5.6 → 2.8 CPU-s; docs/performance.md, "Stop 24"). The loader child
    exits right after, taking any cycles with it."""
    with gc_paused():
        return _build(path, seed, only, shard, cache, faults)


def _build(path: str | Path, seed: int, only: list[str] | None, shard: tuple[int, int] | None, cache: bool,
           faults: bool) -> EmulatedSite:
    raw = Path(path).read_bytes() if cache else b""
    from devices.emulator import check_seed

    check_seed(seed)
    site = _build_in_parts(path, seed, only, shard, faults) if cache else None
    if site is None:
        site = _build_whole(path, seed, only, shard, faults)
    if cache:
        from devices import emucache

        emucache.put(raw, _options(seed, only, shard, faults), site)
    return site


def _serve(known: list[str], only: list[str] | None, shard: tuple[int, int] | None) -> set[str]:
    from devices.shards import shard_of

    enabled = set(known)
    wanted = [n for n in (only if only is not None else known) if n in enabled]
    return set(shard_of(wanted, shard) if shard is not None else wanted)


def _build_whole(path: str | Path, seed: int, only: list[str] | None, shard: tuple[int, int] | None,
                 faults: bool) -> EmulatedSite:
    """The site loaded whole (any site; the one that says what is wrong with a bad file)."""
    from devices.contract import emulated
    from devices.emulator import firmware_plan
    from gateway.config import Config
    from gateway.site.load import load_model

    cfg = load_model(path, Config, cache=True)  # large files: the parsed YAML is cached (gateway/site/configcache.py)
    known = [d.name for d in cfg.devices if d.enabled]
    serve = _serve(known, only, shard)
    devices: list[tuple[int, Any]] = []
    shared: dict[str, Any] = {}  # equal connection options → one object (pickled once)
    for i, d in enumerate(cfg.devices):
        if d.name not in serve:
            continue
        compact = getattr(emulated(d.protocol), "endpoint", None)
        if compact is None:
            devices.append((i, d))
            continue
        conn = shared.setdefault(d.connections.model_dump_json(), d.connections)
        devices.append((i, compact(d, conn)))
    site = EmulatedSite(devices, known, firmware_plan(cfg, seed), seed)
    if faults:
        from devices.scenario.sitetables import site_tables

        site.faults = site_tables(cfg, {d.name: d.points for _, d in devices if isinstance(d, Endpoint)})
    return site


def _build_in_parts(path: str | Path, seed: int, only: list[str] | None, shard: tuple[int, int] | None,
                    faults: bool) -> EmulatedSite | None:
    """The site read a few hundred devices at a time on two cores (gateway/chunkload.py), or None (a small or
    bad file, a plant model, a device kept as its model: :func:`_build_whole` then).

    Why: a first start of 9,500 devices from a file never parsed was 23.8 s and 3.2 GB in one process, most
    of it libyaml's node tree of the whole file and the model of 190,000 points at once (docs/performance.md,
    "Stop 25"). Each part gives what the emulator keeps of its devices (endpoints, the firmware's inputs,
    the fault API's tables); the firmware plan is compiled from all of them in file order, so it is the
    whole site's (tests/modbus/test_emulated_site.py compares it with :func:`_build_whole`'s)."""
    from gateway.chunkload import load_parts
    from gateway.site.isolate import ISOLATE_BYTES

    try:
        if Path(path).stat().st_size <= ISOLATE_BYTES:
            return None
    except OSError:
        return None
    parts = load_parts(path, _part)
    if parts is None:
        return None
    from devices.scenario.sitetables import SiteTables
    from firmware_sim import PlanError
    from firmware_sim.plan import compile_plan

    known = [n for p in parts for n in p[1]]
    serve = _serve(known, only, shard)
    devices: list[tuple[int, Any]] = []
    shared: dict[str, Any] = {}  # equal connection options → one object, across the parts too
    offset = 0
    for count, _, endpoints, _, _, _ in parts:
        for i, e in endpoints:
            if e.name in serve:
                conn = shared.setdefault(e.connections.model_dump_json(), e.connections)
                devices.append((offset + i, e if conn is e.connections else replace(e, connections=conn)))
        offset += count
    groups: dict[str, list] = {}
    sizes: dict[str, dict[str, int]] = {}
    for p in parts:
        groups.update(p[3][1])
        sizes.update(p[4])
    try:
        plan = compile_plan([x for p in parts for x in p[3][0]], groups, seed, sizes, None)
    except (PlanError, ValueError):
        return None  # said by the whole load, as before
    site = EmulatedSite(devices, known, plan, seed)
    if faults:
        site.faults = SiteTables.joined([p[5] for p in parts])  # point names: the endpoints' tuples
    return site


def _part(cfg: Any, mrids: tuple[bytes, ...]) -> tuple | None:
    """What the emulator keeps of one part's devices (gateway/chunkload.py): (devices, enabled names,
    (position, Endpoint) of the enabled ones, firmware points and groups, table sizes, fault API tables);
    None if a device is kept as its model (event-driven servers, a plant model)."""
    from devices.contract import emulated
    from devices.emulator import plan_inputs, plan_sizes
    from devices.scenario.sitetables import site_tables

    if cfg.plant is not None:
        return None
    endpoints = []
    for i, d in enumerate(cfg.devices):
        if not d.enabled:
            continue
        compact = getattr(emulated(d.protocol), "endpoint", None)
        if compact is None:
            return None
        endpoints.append((i, compact(d, d.connections)))
    tables = site_tables(cfg, {e.name: e.points for _, e in endpoints}, mrids)
    return (len(cfg.devices), [e.name for _, e in endpoints], endpoints, plan_inputs(cfg), plan_sizes(cfg), tables)


class _Named(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    enabled: bool = True


class _Names(BaseModel):
    model_config = ConfigDict(extra="ignore")
    devices: list[_Named] = Field(min_length=1)


def device_names(path: str | Path) -> list[str]:
    """The enabled devices' names, read (in a forked child: the parsed YAML of 10,000 devices is ~0.5 GB)
    without validating the rest (``--processes``: the shards validate the whole site; a bad file is
    reported by them)."""
    return in_child(_names, path)


def _names(path: str | Path) -> list[str]:
    from gateway.site.load import load_model

    return [d.name for d in load_model(path, _Names, cache=True).devices if d.enabled]
