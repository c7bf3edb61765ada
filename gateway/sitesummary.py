"""What ``gridgate validate`` says of a valid site file, computed where the file is loaded.

Why: a large file is loaded in a forked child (gateway/site/isolate.py); handing the whole model back
to print a one-line summary was ~5 s of unpickling at 9,500 devices, and loading it whole was a
3 GB node tree and model. The child now reads it a part at a time (gateway/chunkload.py) and hands
back only the summary; a file that cannot be read in parts, or is not valid, is loaded whole as
before, so its errors are exactly the ones it got before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.site.gcpause import gc_paused
from gateway.site.isolate import ISOLATE_BYTES, in_child


def summary(path: str | Path) -> dict[str, Any]:
    """``{site, substations, devices: {name: {protocol, points}}, points, notes}``; raises ConfigError."""
    try:
        isolate = Path(path).stat().st_size > ISOLATE_BYTES
    except OSError:
        isolate = False
    if not isolate:
        from gateway.config import load_config

        return _of(load_config(path, isolate=False))
    return in_child(_in_child, path)


def _in_child(path: str | Path) -> dict[str, Any]:
    from gateway.chunkload import load_parts

    with gc_paused():  # the loader child keeps what it builds until it exits: collections would walk it for nothing
        parts = load_parts(path, _part)
        if parts is None:
            from gateway.config import _load_site

            return _of(_load_site(path, True, False))  # as load_config loads a large file (cached YAML)
    from gateway.site.model import type_notes

    site, substations, level_notes, _, _ = parts[0]
    devices = {name: {"protocol": proto, "points": n} for p in parts for name, proto, n in p[3]}
    return {"site": site, "substations": substations, "devices": devices,
            "points": sum(d["points"] for d in devices.values()),
            "notes": level_notes + type_notes([], sum(p[4] for p in parts))}


def _part(cfg: Any, mrids: tuple[bytes, ...]) -> tuple:
    from gateway.site.model import level_notes

    devices = cfg.devices
    return (cfg.site.name, len(cfg.substations), level_notes(cfg.substations),
            [(d.name, d.protocol, len(d.points)) for d in devices],
            sum(p.measurement.type == "Voltage" for d in devices for p in d.points))


def _of(cfg: Any) -> dict[str, Any]:
    from gateway.site.model import level_notes, type_notes

    return {"site": cfg.site.name, "substations": len(cfg.substations),
            "devices": {d.name: {"protocol": d.protocol, "points": len(d.points)} for d in cfg.devices},
            "points": sum(len(d.points) for d in cfg.devices),
            "notes": level_notes(cfg.substations) + type_notes(cfg.devices)}
