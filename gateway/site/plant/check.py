"""Cross-checks of the plant against the rest of the site file: equipment paths and types, and
every `kind: plant` point's equipment and quantity."""

from __future__ import annotations

from firmware_sim import plant as rt
from gateway.site.plant.model import TYPES, PlantModel

_ONE = {"source": "source", "transformers": "transformer", "switches": "switch", "busbars": "busbar section",
        "loads": "load"}


def check_site(plant: PlantModel | None, paths: dict, devices: list, errors: list[str]) -> None:
    """Append "@yaml.path: problem; fix" messages to ``errors``."""
    if plant is not None:
        for path, sec, x in plant.items():
            if x.equipment not in paths:
                errors.append(f"@{path}.equipment: {x.equipment!r} is not a substation/bay/equipment of this site; "
                              "declare it under substations or fix the path")
            elif paths[x.equipment][2].type not in TYPES[sec]:
                errors.append(f"@{path}.equipment: {x.equipment} is of type {paths[x.equipment][2].type}; "
                              f"a plant {_ONE[sec]} must be of type {' or '.join(TYPES[sec])}")
    data = None
    for di, d in enumerate(devices):
        for pi, p in enumerate(d.points):
            sig = p.signal
            if sig is None or sig.kind != "plant":
                continue
            here = f"@devices[{di}].points[{pi}].signal"
            if plant is None:
                errors.append(f"{here}: a plant quantity needs the site's `plant:` section; add it or use another signal kind")
                continue
            data = data or plant.runtime()
            try:
                rt.resolve(data, sig.equipment, sig.quantity)
            except rt.PlantRefError as e:
                errors.append(f"{here}.{'quantity' if 'has no quantity' in str(e) else 'equipment'}: {e}")
