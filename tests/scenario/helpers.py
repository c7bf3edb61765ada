"""Sites for the scenario tests: the Modbus test meter, and parts of the example substation on free ports."""

from __future__ import annotations

from pathlib import Path

from devices.scenario.ports import with_free_ports
from gateway.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "primary-substation.yaml"


def example_subset(*devices: str) -> Config:
    """The example site with only the named devices, each on a free loopback port."""
    full = load_config(EXAMPLE)
    data = full.model_dump(mode="json")
    data["devices"] = [d for d in data["devices"] if d["name"] in devices]
    return with_free_ports(Config.model_validate(data))
