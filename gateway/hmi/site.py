"""The site description the page reads from ``/site.json``: what the catalog cannot tell.

The retained catalog gives measurements and their equipment, bay and substation; the site file
adds bay descriptions and voltages and, above all, which points are commandable and how
(mode, operators), so the page can offer control only where the gateway would accept it.
"""

from __future__ import annotations

from typing import Any

from gateway.config import Config


def site_description(cfg: Config, ws_url: str) -> dict[str, Any]:
    nb = cfg.gateway.northbound
    commands: dict[str, dict[str, Any]] = {}
    for d in cfg.devices:
        for p in d.points:
            c = p.command
            if c is not None and c.enabled:
                commands[str(cfg.measurement_mrid(p))] = {"mode": c.mode, "operators": list(c.operators),
                                                          "device": d.name, "point": p.name}
    return {
        "wsUrl": ws_url,
        "prefix": nb.topic_prefix,
        "gateway": cfg.gateway.id,
        "site": {"name": cfg.site.name, "description": cfg.site.description},
        "commandsEnabled": bool(nb.commands),
        "commands": commands,
        "substations": [
            {"name": s.name, "description": s.description,
             "bays": [{"name": b.name, "description": b.description, "voltage_kv": b.voltage_kv, "voltage_level": s.level_of(b),
                       "equipment": [{"name": e.name, "type": e.type, "description": e.description} for e in b.equipment]}
                      for b in s.bays]}
            for s in cfg.substations
        ],
    }
