"""Comms faults of the emulated 104 RTU (consulted by ``Iec104Rtu``).

- ``refuse_commands``: every command is refused: a negative activation confirmation (P/N=1) for
  direct-operate points; for select-before-execute points the select is refused the same way.
- ``disconnect`` is handled by the fault engine (RESTART_ON_DISCONNECT): the RTU stops listening.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RtuFaults:
    """What the RTU does wrong right now (replaced as a whole by the fault engine)."""

    refuse_commands: bool = False


def merge(faults: list[Any]) -> RtuFaults:
    return RtuFaults(refuse_commands=any(f.kind == "control_refused" for f in faults))
