"""Emulated Modbus TCP devices for the emulator (see devices/contract.py)."""

from __future__ import annotations

from typing import Any, Sequence

FAULT_KINDS = frozenset({"silent", "delay", "disconnect", "trickle", "exception", "wrong_tid", "short_reply"})
#: the server itself refuses connections while a ``disconnect`` fault is active
RESTART_ON_DISCONNECT = False
#: devices on 127.x addresses of one port may share its listening socket (devices/sharedlisten.py)
SHARES_LISTENERS = True


async def start(d: Any, on_command: Any, fw: Any, listeners: Any = None) -> Any:
    """Modbus devices serve the firmware's register image (writes land there directly)."""
    from devices.modbus.server import ModbusServer
    from devices.netguard import GuardLimits

    server = ModbusServer(fw.modbus(d.name), host=d.host, port=d.port, unit_id=d.unit_id, name=d.name,
                          limits=GuardLimits.of(d.connections), listeners=listeners)
    await server.start()
    return server


def endpoint(d: Any, connections: Any) -> Any:
    """What :func:`start` reads of a device: a polled device runs without its point models
    (devices/emusite.py); ``connections`` is its (shared) ConnectionOptions."""
    from devices.emusite import Endpoint

    return Endpoint(d.name, d.protocol, d.kind, d.host, d.port, d.unit_id, connections,
                    tuple(p.name for p in d.points), d.enabled)


def apply_faults(server: Any, faults: Sequence[Any]) -> None:
    from devices.modbus.faults import merge

    server.faults = merge(faults)
