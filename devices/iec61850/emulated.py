"""Emulated IEC 61850 IEDs for the emulator (see devices/contract.py)."""

from __future__ import annotations

from typing import Any, Sequence

FAULT_KINDS = frozenset({"disconnect", "report_suppression", "association_abort", "control_refused"})
RESTART_ON_DISCONNECT = True


async def start(d: Any, on_command: Any, fw: Any) -> Any:
    from devices.contract import DeviceUnavailable

    try:
        from devices.iec61850.server import Iec61850Ied
    except (ImportError, OSError) as e:  # libiec61850 missing or unloadable on this machine
        raise DeviceUnavailable(f"IEC 61850 stack not available in this build ({e})") from None
    ied = Iec61850Ied(d, on_control=on_command)
    ied.start()  # libiec61850 runs its own server thread
    return ied


def apply_faults(ied: Any, faults: Sequence[Any]) -> None:
    from devices.iec61850.faults import merge

    ied.faults = merge(faults)
