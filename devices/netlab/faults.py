"""When is a link down? Pure functions over the profile's fault list, shared by the
userspace emulator and the netem path."""

from __future__ import annotations

import time

from devices.netlab.profile import Fault


def fault_down(fault: Fault, elapsed: float, wall: float | None = None) -> bool:
    """Is ``fault`` holding the link down ``elapsed`` seconds after lab start?"""
    if fault.kind == "partition":
        return fault.at_s <= elapsed < fault.at_s + (fault.duration_s or 0)
    if fault.kind == "flap":
        if elapsed < fault.at_s:
            return False
        phase = (elapsed - fault.at_s) % (fault.period_s or 1)
        return phase >= (fault.period_s or 0) - (fault.down_s or 0)
    # maintenance-window: daily, HH:MM UTC
    wall = time.time() if wall is None else wall
    hh, mm = (int(x) for x in (fault.start or "00:00").split(":"))
    since_midnight = wall % 86400
    start = hh * 3600 + mm * 60
    return (since_midnight - start) % 86400 < (fault.duration_s or 0)


def link_down(faults: list[Fault], elapsed: float, wall: float | None = None) -> bool:
    return any(fault_down(f, elapsed, wall) for f in faults)
