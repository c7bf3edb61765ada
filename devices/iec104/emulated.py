"""Emulated IEC 60870-5-104 RTUs for the emulator (see devices/contract.py)."""

from __future__ import annotations

from typing import Any, Sequence

FAULT_KINDS = frozenset({"disconnect", "silent", "control_refused", "delay", "startdt_refused", "ack_loss", "time_jump"})
#: a ``disconnect`` stops the c104 server (every connection drops) and restarts it afterwards
RESTART_ON_DISCONNECT = True


async def start(d: Any, on_command: Any, fw: Any) -> Any:
    from devices.contract import DeviceUnavailable

    try:
        from devices.iec104.outstation import Iec104Rtu
    except (ImportError, OSError) as e:  # c104 missing or unloadable on this machine
        raise DeviceUnavailable(f"IEC 60870-5-104 stack (c104) not available in this build ({e})") from None
    rtu = Iec104Rtu(d, on_command=on_command)
    rtu.start()  # c104 runs its own server thread
    return rtu


def apply_faults(rtu: Any, faults: Sequence[Any]) -> None:
    from devices.iec104.faults import merge

    rtu.faults = merge(list(faults))
