"""Move every enabled device of a config to a free loopback port (for runs beside other
emulators, and for tests); the gateway of the same run follows the copy."""

from __future__ import annotations

from gateway.config import Config
from gateway.runtime import free_port  # noqa: F401 - re-exported for tests and labs


def with_free_ports(cfg: Config) -> Config:
    devices = [d.model_copy(update={"port": free_port(d.host)}) if d.enabled else d for d in cfg.devices]
    return cfg.model_copy(update={"devices": devices})
