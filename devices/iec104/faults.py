"""Comms faults of the emulated 104 RTU (consulted by ``Iec104Rtu`` and its proxy, devices/iec104/proxy.py).

- ``control_refused``: every command is refused with a negative activation confirmation (P/N=1): at
  once for direct commands, at the execute for select-before-execute ones (c104 confirms selects itself).
- ``time_jump`` (``seconds``): the RTU's clock is off by that much: every time tag (CP56Time2a) it stamps
  from then on jumps forward (> 0) or back (< 0); cleared, its clock is right again.
- ``silent``, ``startdt_refused``, ``ack_loss``, ``delay`` (``ms``, ``jitter_ms``): done on the link by the
  proxy in front of c104 (see proxy.py): connections accepted and never answered; STARTDT never
  confirmed; acknowledgements withheld; every frame to the master held back.
- ``disconnect`` is handled by the fault engine (RESTART_ON_DISCONNECT): the RTU stops listening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.iec104.proxy import LinkFaults


@dataclass(frozen=True)
class RtuFaults:
    """What the RTU does wrong right now (replaced as a whole by the fault engine)."""

    refuse_commands: bool = False
    time_jump_s: float = 0.0
    link: LinkFaults = field(default_factory=LinkFaults)


def merge(faults: list[Any]) -> RtuFaults:
    delays = [f for f in faults if f.kind == "delay"]
    link = LinkFaults(
        silent=any(f.kind == "silent" for f in faults),
        startdt_refused=any(f.kind == "startdt_refused" for f in faults),
        ack_loss=any(f.kind == "ack_loss" for f in faults),
        delay_s=max((f.ms for f in delays), default=0.0) / 1000,
        jitter_s=max((f.jitter_ms for f in delays), default=0.0) / 1000,
    )
    return RtuFaults(refuse_commands=any(f.kind == "control_refused" for f in faults),
                     time_jump_s=sum(float(f.seconds) for f in faults if f.kind == "time_jump"), link=link)
