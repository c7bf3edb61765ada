"""Signal and fault descriptions of one simulated point, as written in the YAML config.

These are data, not code: the C core and the Python reference both compile them into
parameter arrays, and the fault-scripting API sets and clears faults at run time by
sending the same models.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- signals


class Constant(_Spec):
    kind: Literal["constant"]
    value: float = 0.0
    noise: float = Field(0.0, ge=0, description="standard deviation of gaussian noise, engineering units")


class Sine(_Spec):
    kind: Literal["sine"]
    mean: float = 0.0
    amplitude: float = 1.0
    period: float = Field(60.0, gt=0, description="seconds")
    phase: float = Field(0.0, description="degrees")
    harmonics: list[tuple[int, float]] = Field(
        default_factory=list, description="[order, relative amplitude] pairs, e.g. [[3, 0.05], [5, 0.03]]"
    )
    noise: float = Field(0.0, ge=0)


class Ramp(_Spec):
    kind: Literal["ramp"]
    start: float = 0.0
    rate: float = Field(1.0, description="units per second")
    min: float | None = None
    max: float | None = None
    wrap: bool = Field(False, description="restart at min when max is reached (else hold)")
    noise: float = Field(0.0, ge=0)


class RandomWalk(_Spec):
    kind: Literal["random_walk"]
    start: float = 0.0
    step: float = Field(0.01, ge=0, description="standard deviation per second")
    min: float | None = None
    max: float | None = None
    revert: float = Field(0.0, ge=0, description="mean reversion towards start, per second (0..1)")


class Steps(_Spec):
    kind: Literal["steps"]
    schedule: list[tuple[float, float]] = Field(min_length=1, description="[seconds, value] pairs, ascending")
    repeat: float | None = Field(None, gt=0, description="period in seconds after which the schedule restarts")

    @model_validator(mode="after")
    def _ascending(self) -> "Steps":
        times = [t for t, _ in self.schedule]
        if times != sorted(times):
            raise ValueError("schedule times must be ascending")
        return self


PROFILE_SHAPES = ("domestic", "commercial", "industrial", "mixed-feeder", "flat")


class DailyProfile(_Spec):
    """A 48-value half-hourly shape (GB settlement periods), linearly interpolated."""

    kind: Literal["daily_profile"]
    peak: float = Field(description="value at the shape's maximum")
    shape: Literal["domestic", "commercial", "industrial", "mixed-feeder", "flat"] | list[float] = "mixed-feeder"
    noise: float = Field(0.0, ge=0)
    utc_offset_h: float = Field(0.0, description="shift of local time against simulated UTC")

    @model_validator(mode="after")
    def _shape(self) -> "DailyProfile":
        if isinstance(self.shape, list) and len(self.shape) != 48:
            raise ValueError(f"a custom shape needs 48 half-hourly values, got {len(self.shape)}")
        return self


class Derived(_Spec):
    """One quantity of a correlated group: P, Q, S, I and V of a feeder from one load."""

    kind: Literal["derived"]
    group: str = Field(description="name of the load group (a `groups:` entry of the device)")
    quantity: Literal["P", "Q", "S", "I", "V", "PF"]
    noise: float = Field(0.0, ge=0)


class Counter(_Spec):
    """An accumulator integrating another point (power → energy)."""

    kind: Literal["counter"]
    source: str = Field(description="point name of the same device to integrate")
    scale: float = Field(1.0 / 3600.0, description="factor per second (W·s → Wh is 1/3600)")
    start: float = 0.0
    rollover: float | None = Field(None, gt=0)


class Discrete(_Spec):
    """A state (breaker position, tap position) changed only by events, commands or faults."""

    kind: Literal["discrete"]
    initial: int = 0
    min: int | None = None
    max: int | None = None


class PlantValue(_Spec):
    """A quantity of the site's plant model (firmware_sim.plant): the one state every device reads.

    ``scale`` converts the SI value (W, var, VA, A, V line-line, Hz) to the point's unit;
    left out, the site loader takes it from the measurement's multiplier (k: 0.001).
    A ``position``, ``tap`` or source ``energised`` point is commandable: a command changes the plant.
    """

    kind: Literal["plant"]
    equipment: str = Field(min_length=1, description="plant equipment, e.g. KGM/F1/FDR")
    quantity: Literal["P", "Q", "S", "I", "PF", "V", "F", "position", "tap", "V_lv", "I_lv", "P_loss", "energised", "start",
                      "operate", "avc_auto", "avc_state", "ar_state", "I_A", "I_B", "I_C", "I_N", "avc_in_band", "avc_raise",
                      "avc_lower", "avc_timing", "avc_blocked", "avc_lockout"]
    phase: Literal["A", "B", "C", "N", "AB", "BC", "CA", "AN", "BN", "CN", "ABC"] | None = Field(
        None, description="one phase of a balanced quantity: P/Q/S a third, V with AN/BN/CN line-neutral")
    scale: float | None = Field(None, description="SI value × scale = point value (default from the measurement multiplier)")
    noise: float = Field(0.0, ge=0, description="measurement noise in the point's unit; none while the value is 0")


SignalSpec = Annotated[
    Union[Constant, Sine, Ramp, RandomWalk, Steps, DailyProfile, Derived, Counter, Discrete, PlantValue],
    Field(discriminator="kind"),
]


class LoadGroup(_Spec):
    """Drives the `derived` points of one feeder so that P, Q, I and V agree physically."""

    name: str
    load: SignalSpec = Field(description="apparent power S of the group, in kVA (any signal kind)")
    power_factor: float = Field(0.95, gt=0, le=1)
    voltage: float = Field(11000.0, gt=0, description="nominal line-line voltage, V")
    voltage_noise: float = Field(0.0, ge=0)


# ---------------------------------------------------------------- faults


class _Fault(_Spec):
    pass


class Stuck(_Fault):
    kind: Literal["stuck"]
    value: float | None = Field(None, description="freeze at this value (default: the value when set)")


class Drift(_Fault):
    kind: Literal["drift"]
    rate: float = Field(description="units per second added from the time the fault is set")


class Spike(_Fault):
    kind: Literal["spike"]
    magnitude: float
    every: float = Field(10.0, gt=0, description="seconds between spikes")
    width: float = Field(0.0, ge=0, description="seconds a spike lasts (0: one tick)")


class NoiseBurst(_Fault):
    kind: Literal["noise"]
    sigma: float = Field(gt=0)


class Offset(_Fault):
    kind: Literal["offset"]
    value: float


class Saturate(_Fault):
    kind: Literal["saturate"]
    min: float | None = None
    max: float | None = None


class Dropout(_Fault):
    """Value frozen and quality INVALID|FAILURE."""

    kind: Literal["dropout"]


class OutOfRange(_Fault):
    kind: Literal["out_of_range"]
    value: float | None = Field(None, description="value to show while the flag is set")


class Oscillation(_Fault):
    """Chatter on a discrete: toggles between two states."""

    kind: Literal["oscillation"]
    period: float = Field(0.2, gt=0, description="seconds per full on/off cycle")
    states: tuple[int, int] = (1, 2)


class ScaleError(_Fault):
    kind: Literal["scale_error"]
    factor: float


class QualityOverride(_Fault):
    kind: Literal["quality"]
    flags: list[
        Literal["substituted", "test", "operatorBlocked", "questionable", "invalid", "oldData", "inaccurate"]
    ] = Field(min_length=1)


FaultSpec = Annotated[
    Union[Stuck, Drift, Spike, NoiseBurst, Offset, Saturate, Dropout, OutOfRange, Oscillation, ScaleError, QualityOverride],
    Field(discriminator="kind"),
]
