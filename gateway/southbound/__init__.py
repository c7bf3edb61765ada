"""Southbound drivers, one per protocol, all shaped by :mod:`gateway.southbound.session`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gateway.protocols import protocol

if TYPE_CHECKING:
    from gateway.site.model import DeviceBase


class DriverUnavailable(Exception):
    """This build has no working driver for a device's protocol (yet)."""


def make_source(device: DeviceBase):
    """The driver of ``device``'s protocol: ``gateway.southbound.<protocol>.Driver``, imported lazily so a
    missing optional stack (e.g. libiec61850) only affects its own devices."""
    spec = protocol(device.protocol)  # type: ignore[attr-defined]
    try:
        mod = importlib.import_module(spec.driver_module)
    except ImportError as e:
        raise DriverUnavailable(f"no {spec.title} driver in this build ({e})") from None
    return mod.Driver(device)
