"""Compiled-site cache of ``gridgate emulate``: the endpoints and firmware plan of a site file, kept
so a restart skips validating and compiling it.

Why: validating and compiling a 10,000-device site (200,000 points) is ~12 CPU-seconds, most
of the emulator's start-up; reading the compiled tables back is ~0.2 s (docs/performance.md).
The entry's name is the SHA-256 of the file's bytes, the options that shape the result (seed,
``--device``, shard) and the build id of the code that validates and compiles it (:func:`gateway.site.configcache.code_id`: sizes and mtimes of its sources, pydantic, Python), so an edited
file or another gridgate never meets a stale entry. As in :mod:`gateway.site.configcache`
(same directory, same rules) entries are ``marshal`` data (never pickle: loading one cannot run
code), checksummed, owner-only, and any failure falls back to building: the cache can only
make start-up faster. Sites with event-driven devices or a plant model are not cached (their
models are not plain data); they are few devices.
"""

from __future__ import annotations

import hashlib
import marshal
from array import array
from pathlib import Path
from typing import Any

FORMAT = 2  # 2: the fault API's site tables
_PACKAGES = ("gateway", "firmware_sim", "devices")


def _entry(raw: bytes, options: tuple) -> Path | None:
    from gateway.site.configcache import cache_dir, code_id

    d = cache_dir()
    if d is None:
        return None
    h = hashlib.sha256(raw)
    h.update(code_id(_PACKAGES).encode())  # the code that validates and compiles a site
    h.update(repr(options).encode())
    return d / f"emulated-{h.hexdigest()}-f{FORMAT}.marshal"


def get(raw: bytes, options: tuple) -> Any | None:
    """The EmulatedSite of a file with these bytes and options, if cached (checksum, memory map and
    logging of a refused entry: :func:`gateway.site.configcache.read_entry`)."""
    from gateway.site.configcache import read_entry

    def parse(payload: memoryview) -> Any:
        try:
            return _decode(marshal.loads(payload))
        except (KeyError, IndexError) as e:  # an entry of another shape: refused like a damaged one
            raise ValueError(f"not an emulator entry ({type(e).__name__}: {e})") from None

    return read_entry(_entry(raw, options), parse)


def put(raw: bytes, options: tuple, site: Any) -> None:
    """Keep the compiled site (atomic, owner-only, the newest few kept: :func:`gateway.site.configcache.write_entry`)."""
    from gateway.site.configcache import write_entry

    data = _encode(site)
    if data is not None:
        write_entry(_entry(raw, options), data)


def _arr(a: array) -> tuple:
    return (a.typecode, a.tobytes())


def _unarr(t: tuple) -> array:
    a = array(t[0])
    a.frombytes(t[1])
    return a


_ARRAYS = ("kind", "noise", "deadband", "report", "ref", "reg_off", "reg_type", "reg_order", "reg_scale", "reg_offset",
           "harm_pt", "harm_freq", "harm_phase", "harm_amp", "pool")


def _encode(site: Any) -> dict | None:
    from devices.emusite import Endpoint

    plan = site.plan
    if plan.plant is not None or plan.params.get("plant") is not None:
        return None
    if not all(isinstance(d, Endpoint) for _, d in site.devices):
        return None
    conns: dict[int, int] = {}
    conn_data: list[dict] = []
    devices = []
    for i, d in site.devices:
        k = conns.setdefault(id(d.connections), len(conn_data))
        if k == len(conn_data):
            conn_data.append(d.connections.model_dump())
        devices.append((i, d.name, d.protocol, d.kind, str(d.host), d.port, d.unit_id, k, d.points, d.enabled))
    P = plan.params
    params = {k: v for k, v in P.items() if k not in _ARRAYS and k not in ("p", "plant")}
    return {
        "devices": devices, "connections": conn_data, "known": site.known, "seed": site.seed,
        "params": params, "arrays": {k: _arr(P[k]) for k in _ARRAYS}, "p": [_arr(a) for a in P["p"]],
        "index": plan.index.by_device, "tables": plan.tables, "names": plan.names, "plan_devices": plan.devices,
        "device_of": _arr(plan.device_of), "signal": _arr(plan.signal), "reg_table": _arr(plan.reg_table),
        "n_regs": plan.n_regs, "n_bits": plan.n_bits, "faults": plan.faults,
        "fault_api": None if site.faults is None else site.faults.to_data(),
    }


def _decode(data: dict) -> Any:
    from devices.emusite import EmulatedSite, Endpoint
    from firmware_sim.plan import Plan, PointIndex
    from gateway.site.model import ConnectionOptions

    conns = [ConnectionOptions.model_validate(c) for c in data["connections"]]
    devices = [(i, Endpoint(name, proto, kind, host, port, unit, conns[k], points, enabled))
               for i, name, proto, kind, host, port, unit, k, points, enabled in data["devices"]]
    params = dict(data["params"])
    params.update({k: _unarr(v) for k, v in data["arrays"].items()})
    params["p"] = [_unarr(a) for a in data["p"]]
    params["plant"] = None
    index = PointIndex()
    index.by_device = data["index"]
    plan = Plan(params, index, params["kind"], data["tables"], names=data["names"], devices=data["plan_devices"],
                device_of=_unarr(data["device_of"]), signal=_unarr(data["signal"]), reg_table=_unarr(data["reg_table"]),
                n_regs=data["n_regs"], n_bits=data["n_bits"], plant=None, faults=data["faults"])
    tables = None
    if data["fault_api"] is not None:
        from devices.scenario.sitetables import SiteTables

        tables = SiteTables.of_data(data["fault_api"])
    return EmulatedSite(devices, data["known"], plan, data["seed"], faults=tables)
