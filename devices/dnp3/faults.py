"""Comms faults of the emulated outstation, consulted per request/response by ``Dnp3Outstation``.

- ``device_trouble``: IIN1.6 is set in every response while active (cleared on clear).
- ``confirm_loss``: application-layer confirms from the master are ignored (counted), so
  every confirmable response looks unconfirmed: events stay buffered and are sent again
  (unsolicited: the same fragment and sequence after ``unsol_confirm_timeout``; solicited:
  released after ``confirm_timeout`` and reported again in the next read). Nothing is lost;
  a master may see an event twice, which DNP3 allows after a missing confirm.

The one-shot IIN bits (DEVICE_RESTART, NEED_TIME, EVENT_BUFFER_OVERFLOW) are outstation
state the master clears, so they stay plain attributes of the outstation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dnp3Faults:
    device_trouble: bool = False
    confirm_loss: bool = False


def merge(os_: Any, faults: list[Any]) -> Dnp3Faults:
    """Merge one DNP3 device's comms faults: DEVICE_TROUBLE and confirm loss last while active;
    the other IIN bits are raised once and cleared by the master as after the real event."""
    bits = {b for f in faults if f.kind == "iin" for b in f.bits}
    if "DEVICE_RESTART" in bits:
        os_.restart_iin = True  # the master clears it by writing IIN1.7, as after a real restart
    if "NEED_TIME" in bits:
        os_.need_time = True
    if "EVENT_BUFFER_OVERFLOW" in bits:
        os_.events.overflow = True  # the buffers clear it themselves once events drain
    return Dnp3Faults(device_trouble="DEVICE_TROUBLE" in bits, confirm_loss=any(f.kind == "confirm_loss" for f in faults))
