"""The one contract between the emulator core and every emulated device.

Each protocol folder ``devices/<protocol>/`` has an ``emulated`` module (kept light: the stack is
imported only when a device starts) with:

- ``FAULT_KINDS``: the comms faults its devices implement (the scenario vocabulary derives from it);
- ``RESTART_ON_DISCONNECT``: whether a ``disconnect`` fault stops and restarts the device (True) or
  the server refuses connections itself (False);
- ``async start(device_cfg, on_command, fw) -> EmulatedDevice``: a listening device;
- ``SHARES_LISTENERS`` (optional, default False): its ``start`` also takes ``listeners=`` (the emulator's
  :class:`devices.sharedlisten.SharedListeners`), so devices on 127.x addresses of one port share one
  listening socket; servers that open their sockets in C (IEC 61850, IEC 104) keep their own;
- ``apply_faults(device, faults)``: merge the active comms faults of one device into it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from gateway.protocols import NAMES, protocol

#: a command arriving at a device: (point name, value) → the firmware takes it as the point's new state
OnCommand = Callable[[str, "float | int"], bool]


@runtime_checkable
class EmulatedDevice(Protocol):
    """A listening emulated device."""

    #: the bound TCP port (the config's, or the ephemeral one when the config says 0)
    port: int
    #: the protocol's fault hook, replaced whole by ``apply_faults``
    faults: Any

    def stop(self) -> Any:
        """Stop listening and close every connection (a coroutine, or plain for C-stack servers)."""


@runtime_checkable
class EventDriven(Protocol):
    """A device told about firmware changes (DNP3 events, IEC 61850 reports, IEC 104 spontaneous ASDUs);
    Modbus devices read the firmware's register image directly and are not.

    An optional method the emulator uses when present (devices/emulator.py):
    ``watch_listeners(hook) -> bool``: the device calls ``hook(True)`` when it gets its first listener
    (a master, a controlling station) *before* that listener's first request is served, and
    ``hook(False)`` when the last one is gone, from any thread; returns whether one listens now. While
    nobody listens the emulator tells the device nothing; on ``hook(True)`` it first hands it every
    point changed meanwhile (current value and quality). A device without it is always told."""

    def update(self, point: str, value: Any, quality: int, timestamp: float) -> None: ...


class DeviceUnavailable(Exception):
    """This build cannot emulate a device of this protocol (its stack is not installed)."""


class EmulatedProtocol(Protocol):
    """What ``devices/<protocol>/emulated.py`` provides (see the module docstring)."""

    FAULT_KINDS: frozenset[str]
    RESTART_ON_DISCONNECT: bool

    async def start(self, device: Any, on_command: OnCommand, fw: Any) -> EmulatedDevice: ...

    def apply_faults(self, device: Any, faults: Sequence[Any]) -> None: ...


def emulated(name: str) -> EmulatedProtocol:
    """The emulated-device module of a registered protocol; a missing or broken one is an error."""
    protocol(name)  # unknown protocol: KeyError naming the known ones
    module: ModuleType = importlib.import_module(f"devices.{name}.emulated")
    return module  # type: ignore[return-value]


def fault_kinds() -> dict[str, frozenset[str]]:
    """protocol → comms fault kinds its emulated devices implement, for every registered protocol."""
    return {name: emulated(name).FAULT_KINDS for name in NAMES}
