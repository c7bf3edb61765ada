"""Emulated DNP3 outstations for the emulator (see devices/contract.py)."""

from __future__ import annotations

from typing import Any, Sequence

FAULT_KINDS = frozenset({"disconnect", "iin", "confirm_loss"})
RESTART_ON_DISCONNECT = True
#: outstations on 127.x addresses of one port may share its listening socket (devices/sharedlisten.py)
SHARES_LISTENERS = True


async def start(d: Any, on_command: Any, fw: Any, listeners: Any = None) -> Any:
    from devices.dnp3.outstation import Dnp3Outstation

    os_ = Dnp3Outstation(d, on_command=on_command, listeners=listeners)
    await os_.start()
    return os_


def apply_faults(os_: Any, faults: Sequence[Any]) -> None:
    from devices.dnp3.faults import merge

    os_.faults = merge(os_, faults)
