"""One value rule for every protocol, applied before any driver is called.

A driver used to decide alone what a value means, so the same request had different
outcomes per protocol (an IEC 61850 breaker opened on any value but 2). Here the point's
measurement decides: a SwitchPosition takes 1 (open) or 2 (closed); another discrete an
integer code (one of its value_map codes when it has one); an analog a finite number.
Drivers keep their own range checks (register width, coil 0/1) as a second line.
"""

from __future__ import annotations

import math

from gateway.site.cimtypes import SWITCH_POSITIONS

SWITCH_COMMANDS = (1, 2)  # open, closed: intermediate (0) and bad (3) are states, not commands


def check_value(kind: str, measurement_type: str, codes: tuple[int, ...], value: object) -> tuple[object, str | None]:
    """(the value to hand the driver, None) or (None, why it is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if kind == "Discrete" and isinstance(value, bool) and measurement_type != "SwitchPosition" and not codes:
            return int(value), None  # a plain on/off discrete
        return None, f"{value!r} is not a number this {measurement_type} point takes"
    if not math.isfinite(value):
        return None, f"{value} is not a finite number"
    if kind == "Analog":
        return value, None
    if kind != "Discrete":
        return None, f"a {kind} point takes no commands"
    if not float(value).is_integer():
        return None, f"a discrete point takes an integer code, not {value}"
    code = int(value)
    if measurement_type == "SwitchPosition":
        if code not in SWITCH_COMMANDS:
            names = ", ".join(f"{c} ({SWITCH_POSITIONS[c]})" for c in SWITCH_COMMANDS)
            return None, f"a SwitchPosition command is {names}, not {value}"
        return code, None
    if codes and code not in codes:
        return None, f"{code} is not one of the point's codes {sorted(codes)} (its value_map)"
    return code, None
