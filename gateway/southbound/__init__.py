"""Southbound drivers, one per protocol, all shaped by :mod:`gateway.southbound.session`."""

from __future__ import annotations

import importlib

from gateway.config import DeviceBase

#: protocol → (module, class). Imported lazily so a missing optional stack only affects its devices.
DRIVERS: dict[str, tuple[str, str]] = {
    "modbus": ("gateway.southbound.modbus", "ModbusSource"),
    "dnp3": ("gateway.southbound.dnp3", "Dnp3Source"),
    "iec61850": ("gateway.southbound.iec61850", "MmsSource"),
}


class DriverUnavailable(Exception):
    """This build has no working driver for a device's protocol (yet)."""


def make_source(device: DeviceBase):
    protocol = device.protocol  # type: ignore[attr-defined]
    module, cls = DRIVERS[protocol]
    try:
        mod = importlib.import_module(module)
        factory = getattr(mod, cls)
    except (ImportError, AttributeError) as e:
        raise DriverUnavailable(f"no {protocol} driver in this build ({e})") from None
    return factory(device)
