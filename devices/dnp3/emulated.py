"""Emulated DNP3 outstations for the emulator (see devices/contract.py)."""

from __future__ import annotations

from typing import Any, Sequence

FAULT_KINDS = frozenset({"disconnect", "iin", "confirm_loss"})
RESTART_ON_DISCONNECT = True


async def start(d: Any, on_command: Any, fw: Any) -> Any:
    from devices.dnp3.outstation import Dnp3Outstation

    os_ = Dnp3Outstation(d, on_command=on_command)
    await os_.start()
    return os_


def apply_faults(os_: Any, faults: Sequence[Any]) -> None:
    from devices.dnp3.faults import merge

    os_.faults = merge(os_, faults)
