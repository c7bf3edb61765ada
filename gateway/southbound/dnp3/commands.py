"""Command requests (CROB g12v1, analog output g41) and their per-point result.

dnp3py's master never decodes the echoed per-point status and encodes qualifier 0x28 with
a 1-byte count; here the request is built with ``hdr_prefixed`` (0x17/0x28 done right)
and the status of *our* point is read back from the echo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.protocols.dnp3 import objects as o
from gateway.protocols.dnp3.config import Dnp3Point
from gateway.protocols.dnp3.points import to_raw
from gateway.southbound.contract import CommandOutcome

Mode = Literal["direct", "sbo"]


@dataclass(kw_only=True)
class CommandResult(CommandOutcome):
    """Outcome of one operate: the DNP3 command status code and its name (``NOT_CONNECTED``/
    ``NO_ECHO`` when the device never judged it, ``REFUSED`` when we refused before sending)."""

    status: int
    name: str
    detail: str = ""


def command_body(p: Dnp3Point, value: float | int | bool, pulse_ms: int = 100) -> tuple[int, bytes]:
    """(group, object header + object) for operating ``p`` to ``value`` (engineering units)."""
    if p.group == "analog_output":
        raw = to_raw(p, value)
        integral = float(raw).is_integer() and -(2**31) <= raw < 2**31
        var = 1 if integral else 3
        obj = o.Obj(p.index, int(raw) if integral else float(raw))
        return 41, o.hdr_prefixed(41, var, [(p.index, o.encode(41, var, obj))])
    if p.group == "double_binary":
        code = int(to_raw(p, value))  # type: ignore[arg-type]
        if code not in (1, 2):
            raise ValueError(f"point {p.name!r}: a breaker command must be open (1) or closed (2), got {value!r}")
        ctrl = (o.TCC_CLOSE if code == 2 else o.TCC_TRIP) | o.PULSE_ON
        obj = o.Obj(p.index, crob=(ctrl, 1, pulse_ms, 0))
    elif p.group in ("binary_output", "binary"):
        ctrl = o.LATCH_ON if to_raw(p, value) else o.LATCH_OFF
        obj = o.Obj(p.index, crob=(ctrl, 1, 0, 0))
    else:
        raise ValueError(f"point {p.name!r} is a {p.group} input; only binary_output, double_binary and analog_output points take commands")
    return 12, o.hdr_prefixed(12, 1, [(p.index, o.encode(12, 1, obj))])


def echoed_status(headers: list[o.Header], group: int, index: int) -> int | None:
    for h in headers:
        if h.group == group:
            for obj in h.objects:
                if obj.index == index:
                    return obj.status
    return None
