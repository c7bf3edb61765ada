"""The one contract between the gateway core and every southbound driver.

A driver (``gateway.southbound.<protocol>.Driver``) polls or listens to one device and emits
:class:`~gateway.pipeline.Reading` s; the app publishes its comms state and its protocol counters
whole on the status topic; where the protocol can operate plant, ``operate`` answers with one
:class:`CommandOutcome` whose ``outcome`` uses one vocabulary for every protocol. Protocol details
(DNP3 status code, IEC 61850 AddCause, Modbus function and exception) ride in subclasses'
extra fields and reach the control room in the result's ``detail``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from gateway.pipeline import CommsState, Emit

Mode = Literal["direct", "sbo"]
#: accepted: the device executed it; refused: refused before anything was sent (by us or by policy);
#: device_error: the device answered with a refusal; timed_out: no answer in time (effect unknown);
#: not_connected: no association to the device
Outcome = Literal["accepted", "refused", "device_error", "timed_out", "not_connected"]
OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]

#: protocol counters as published: name → number, or name → {sub-name → number}
Counters = dict[str, "int | float | dict[str, int | float]"]


@dataclass(kw_only=True)
class CommandOutcome:
    """What every driver's ``operate`` returns; never raised, always answered.

    Plain data (a driver builds it, the command router publishes :meth:`model_dump`): no pydantic in a
    running gateway's imports (~10 MB of its RSS). Subclasses are ``@dataclass(kw_only=True)`` too.
    """

    ok: bool
    point: str
    value: float | int | bool
    mode: Mode
    outcome: Outcome
    reason: str = ""

    def model_dump(self) -> dict[str, Any]:
        """Every field as plain data (the result's ``detail``)."""
        return asdict(self)


@runtime_checkable
class Driver(Protocol):
    """A southbound driver for one device."""

    device: str
    protocol: str
    state: CommsState

    async def run(self, emit: Emit) -> None:
        """Run until cancelled: connect, read, emit Readings, reconnect on loss."""

    @property
    def connected(self) -> bool: ...

    def status_counters(self) -> Counters:
        """This driver's protocol counters, JSON-ready (published whole on the status topic)."""


@runtime_checkable
class Operable(Protocol):
    """A driver that can operate plant (commands from the northbound side)."""

    device: str

    async def operate(self, point_name: str, value: float | int | bool, mode: Mode = "direct") -> CommandOutcome: ...


def clean_counters(raw: dict) -> Counters:
    """Keep numbers and one level of named numbers; anything else is a driver bug, dropped here
    rather than breaking the status payload's schema."""
    out: Counters = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            v = {str(kk): vv for kk, vv in v.items() if isinstance(vv, (int, float)) and not isinstance(vv, bool)}
        if isinstance(v, (int, float, dict)) and not isinstance(v, bool):
            out[str(k)] = v
    return out


__all__ = ["CommandOutcome", "Counters", "Driver", "Mode", "OUTCOMES", "Operable", "Outcome", "clean_counters"]
