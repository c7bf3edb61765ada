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


@dataclass(frozen=True)
class Dnp3Faults:
    device_trouble: bool = False
    confirm_loss: bool = False
