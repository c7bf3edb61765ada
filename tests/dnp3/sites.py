"""A device factory for tests of our own DNP3 stacks (no peer library needed)."""

from __future__ import annotations

from typing import Any

from gateway.protocols.dnp3.config import Dnp3Device
from gateway.runtime import free_port  # noqa: F401 - re-exported for the DNP3 tests


def device(points: list[dict[str, Any]], port: int = 0, **dnp3: Any) -> Dnp3Device:
    """A Dnp3Device from short point dicts: {"name", "group", "index", ...}; port 0 = any free port."""
    pts = []
    for p in points:
        q = {"measurement": {"equipment": "S1/B1/CB1", "type": _type(p["group"])}} | p
        pts.append(q)
    return Dnp3Device.model_validate(
        {"name": "rtu1", "kind": "rtu", "protocol": "dnp3", "host": "127.0.0.1", "port": port or 20000, "timeout": 1.0,
         "poll_interval": 0.5, "dnp3": dnp3, "points": pts}
    ).model_copy(update={"port": port})  # the config requires a real port; tests bind port 0


def _type(group: str) -> str:
    return {"binary": "SwitchPosition", "double_binary": "SwitchPosition", "binary_output": "SwitchPosition",
            "counter": "ActiveEnergy", "analog": "ThreePhaseActivePower", "analog_output": "ThreePhaseActivePower"}[group]


