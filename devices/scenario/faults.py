"""The protocol-neutral fault vocabulary of scenarios and the live API (plain data).

One discriminated union on ``kind``: data faults are the firmware's own models
(firmware_sim.spec, applied to points), ``set_state`` changes a discrete/setpoint as a
field event would, and comms faults are per protocol (``PROTOCOLS`` says which device
protocols take which kind). Kinds whose device hook does not exist yet validate here and
are refused when applied, naming the missing hook, never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from devices.contract import fault_kinds
from devices.scenario.plant_faults import (
    PLANT_KINDS,
    BreakerFail,
    CtSaturation,
    LoadStep,
    LossOfSupply,
    ShortCircuit,
    TapRunaway,
)
from firmware_sim.spec import (
    Drift,
    Dropout,
    NoiseBurst,
    Offset,
    Oscillation,
    OutOfRange,
    QualityOverride,
    Saturate,
    ScaleError,
    Spike,
    Stuck,
)


class _Comms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SetState(_Comms):
    """A field event: breaker opens, tap moves (like a command, on the next firmware tick)."""

    kind: Literal["set_state"]
    value: float


class Silent(_Comms):
    kind: Literal["silent"]


class Delay(_Comms):
    kind: Literal["delay"]
    ms: float = Field(ge=0, le=600_000, description="fixed delay before every reply")
    jitter_ms: float = Field(0.0, ge=0, le=600_000, description="plus a random 0..jitter_ms")


class Disconnect(_Comms):
    """Drop the connections and refuse new ones while active (the device is unreachable)."""

    kind: Literal["disconnect"]


class Trickle(_Comms):
    kind: Literal["trickle"]
    bytes_per_s: float = Field(gt=0, description="reply bytes written per second")


class ExceptionReply(_Comms):
    kind: Literal["exception"]
    code: int = Field(description="Modbus exception code 01..0B")
    function: int | None = Field(None, ge=1, le=127)
    start: int = Field(0, ge=0, le=65535)
    end: int = Field(65535, ge=0, le=65535)


class WrongTid(_Comms):
    kind: Literal["wrong_tid"]


class ShortReply(_Comms):
    kind: Literal["short_reply"]
    bytes: int = Field(2, ge=1, le=255, description="bytes cut off the end of each reply")


IinBit = Literal["DEVICE_RESTART", "NEED_TIME", "EVENT_BUFFER_OVERFLOW", "DEVICE_TROUBLE"]


class Iin(_Comms):
    kind: Literal["iin"]
    bits: list[IinBit] = Field(min_length=1)


class ConfirmLoss(_Comms):
    kind: Literal["confirm_loss"]


class ReportSuppression(_Comms):
    kind: Literal["report_suppression"]


class AssociationAbort(_Comms):
    kind: Literal["association_abort"]


class ControlRefused(_Comms):
    kind: Literal["control_refused"]
    add_cause: int = Field(ge=0, le=27, description="IEC 61850-7-2 AddCause, e.g. 5 (blocked-by-mode), 8 (blocked-by-interlocking)")


class StartdtRefused(_Comms):
    """IEC 104: the RTU never confirms STARTDT (open connections closed on injection)."""

    kind: Literal["startdt_refused"]


class AckLoss(_Comms):
    """IEC 104: the RTU withholds its acknowledgements (S-frames, N(R)), so the master's t1 expires."""

    kind: Literal["ack_loss"]


class TimeJump(_Comms):
    """IEC 104: the RTU's clock jumps; its time tags (CP56Time2a) are off by ``seconds`` while active."""

    kind: Literal["time_jump"]
    seconds: float = Field(ge=-3_153_600_000, le=3_153_600_000, description="forward (> 0) or back (< 0)")


class LinkDown(_Comms):
    """The named emulated link drops every packet while active (cleared: back up)."""

    kind: Literal["link_down"]


class Partition(_Comms):
    """Same effect as link_down on the named link; the word network people use for a WAN cut."""

    kind: Literal["partition"]


class LinkUp(_Comms):
    """Heal the named link now (ends a profile's or an earlier step's outage early)."""

    kind: Literal["link_up"]


class Latency(_Comms):
    """Change the named WAN link's impairment while active; the profile's values come back on clear."""

    kind: Literal["latency"]
    ms: float = Field(ge=0, le=10_000, description="one-way delay")
    jitter_ms: float | None = Field(None, ge=0, le=10_000, description="± uniform; default: unchanged (capped at ms)")
    loss: float | None = Field(None, ge=0, le=1, description="packet loss fraction 0..1; default: unchanged")
    rate_kbit: float | None = Field(None, gt=0, description="bandwidth both ways; default: unchanged")


Fault = Annotated[
    Union[
        Stuck, Drift, Spike, NoiseBurst, Offset, Saturate, Dropout, OutOfRange, Oscillation, ScaleError, QualityOverride,
        SetState, Silent, Delay, Disconnect, Trickle, ExceptionReply, WrongTid, ShortReply, Iin, ConfirmLoss,
        ReportSuppression, AssociationAbort, ControlRefused, StartdtRefused, AckLoss, TimeJump, LinkDown, Partition, LinkUp, Latency,
        ShortCircuit, LoadStep, LossOfSupply, BreakerFail, TapRunaway, CtSaturation,
    ],
    Field(discriminator="kind"),
]
FAULT = TypeAdapter(Fault)

DATA_KINDS = frozenset(
    {"stuck", "drift", "spike", "noise", "offset", "saturate", "dropout", "out_of_range", "oscillation", "scale_error", "quality"}
)
POINT_KINDS = DATA_KINDS | {"set_state"} | PLANT_KINDS
NETWORK_KINDS = frozenset({"link_down", "partition", "link_up", "latency"})
#: device protocol → comms kinds its emulated devices implement (declared in devices/<protocol>/emulated.py)
PROTOCOLS: dict[str, frozenset[str]] = fault_kinds()
#: kinds that exist in the vocabulary but cannot be applied in every run: why
NOT_YET = {
    k: "network faults need the network-profile lab: run with --profile NAME (or `profile:` in the scenario; "
       "a profile whose link has `emulate:`, e.g. wan-cellular)"
    for k in ("link_down", "partition", "link_up", "latency")
}
DEVICE_KINDS = frozenset().union(*PROTOCOLS.values())
ALL_KINDS = POINT_KINDS | DEVICE_KINDS | NETWORK_KINDS
