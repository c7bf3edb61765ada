"""The protocol registry: the one list of the protocols gridgate speaks.

Everything that differs by protocol is derived from here: the site file's device union and its
JSON Schema, the YAML error paths, the gateway's driver table, the emulator's device table, the
scenario fault kinds, the network lab's standard ports and the profiles' field rules. Adding a
protocol is one folder under each layer and one line in ``NAMES`` (docs/adding-a-protocol.md).

This layer imports only the site layer; drivers and emulated devices are named by convention
(``gateway.southbound.<name>``, ``devices.<name>``) and imported by their own layers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.site.model import DeviceBase

#: the registry line: one name per protocol, in the order they are listed to users
NAMES: tuple[str, ...] = ("modbus", "dnp3", "iec61850", "iec104")


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """What the rest of gridgate needs to know of one protocol (declared in its folder's __init__)."""

    name: str
    title: str
    #: ``module:Class`` of the site-file model of its devices, imported when first asked (:attr:`device`): a
    #: gateway restarted from its compiled tables never imports pydantic or the site models (~15 MB)
    device_model: str
    #: the protocol's registered TCP port (network-profile labs and profile rules use it)
    standard_port: int
    #: the key of a point that holds its protocol address (error messages, schema docs)
    address_key: str

    @property
    def device(self) -> type[DeviceBase]:
        module, _, name = self.device_model.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def driver_module(self) -> str:
        return f"gateway.southbound.{self.name}"

    @property
    def device_module(self) -> str:
        return f"devices.{self.name}"


@cache
def protocols() -> dict[str, ProtocolSpec]:
    """name → spec, in registry order."""
    out: dict[str, ProtocolSpec] = {}
    for name in NAMES:
        spec = importlib.import_module(f"gateway.protocols.{name}").PROTOCOL
        if spec.name != name:
            raise RuntimeError(f"gateway/protocols/{name}: PROTOCOL.name is {spec.name!r}; it must be {name!r}")
        out[name] = spec
    return out


def protocol(name: str) -> ProtocolSpec:
    try:
        return protocols()[name]
    except KeyError:
        raise KeyError(f"unknown protocol {name!r}; known: {', '.join(NAMES)}") from None


def device_models() -> tuple[type[DeviceBase], ...]:
    return tuple(p.device for p in protocols().values())


def standard_ports() -> dict[str, int]:
    return {p.name: p.standard_port for p in protocols().values()}
