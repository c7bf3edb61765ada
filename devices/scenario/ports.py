"""Move every enabled device of a config to a free loopback port (for runs beside other
emulators, and for tests); the gateway of the same run follows the copy."""

from __future__ import annotations

import socket

from gateway.config import Config


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def with_free_ports(cfg: Config) -> Config:
    devices = [d.model_copy(update={"port": free_port(d.host)}) if d.enabled else d for d in cfg.devices]
    return cfg.model_copy(update={"devices": devices})
