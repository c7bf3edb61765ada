"""Physical events on the site's plant (scenarios and the live fault API): the network reacts,
the measurements follow. A plant event targets a point that reads the equipment (e.g.
``{point: ied-f1/Ia}`` for a fault on feeder F1); clearing it restores the equipment.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: the equipment section of the plant each event applies to
SECTION = {"short_circuit": "loads", "load_step": "loads", "loss_of_supply": "source", "breaker_fail": "switches",
           "tap_runaway": "transformers", "ct_saturation": "switches"}
PLANT_KINDS = frozenset(SECTION)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShortCircuit(_Event):
    """A fault on a feeder through ``impedance`` ohm, until cleared (a tripped feeder carries no current)."""

    kind: Literal["short_circuit"]
    type: Literal["three_phase", "phase_earth", "phase_phase"] = Field(
        "three_phase", description="phase_earth is on phase A, phase_phase between B and C")
    impedance: float = Field(3.0, gt=0.001, description="fault impedance, ohm per phase (resistive)")


class LoadStep(_Event):
    """The feeder's demand becomes ``factor`` times its day shape (1 = normal) while active."""

    kind: Literal["load_step"]
    factor: float = Field(ge=0, le=10)


class LossOfSupply(_Event):
    """The upstream source is lost while active: the whole site de-energises (target: any plant point)."""

    kind: Literal["loss_of_supply"]


class BreakerFail(_Event):
    """The breaker ignores trip commands from its protection while active."""

    kind: Literal["breaker_fail"]


class TapRunaway(_Event):
    """The tap changer motor sticks and steps on its own; an AVC in auto locks out after one step."""

    kind: Literal["tap_runaway"]
    direction: Literal["raise", "lower"] = "raise"


class CtSaturation(_Event):
    """The breaker's current transformers saturate: above ``knee_a`` they reproduce only ``factor`` of the
    current, so readings and the relay see less and the relay trips later than the true current would make it."""

    kind: Literal["ct_saturation"]
    factor: float = Field(0.5, gt=0, lt=1, description="share of the current above the knee the CT reproduces")
    knee_a: float = Field(0.0, ge=0, description="primary current (A) where saturation starts; 0: at any current")


def value_of(fault: Any, clear: bool) -> float:
    """The firmware's event value (firmware_sim.Firmware.plant_fault) to apply or to clear ``fault``."""
    k = fault.kind
    if k == "short_circuit":
        return 0.0 if clear else fault.impedance
    if k == "load_step":
        return 1.0 if clear else fault.factor
    if k == "tap_runaway":
        return 0.0 if clear else (1.0 if fault.direction == "raise" else 2.0)
    if k == "ct_saturation":
        return 1.0 if clear else fault.factor
    return 0.0 if clear else 1.0


def fault_args(fault: Any) -> dict[str, Any]:
    """The extra arguments of Firmware.plant_fault: a short circuit's type, a CT's knee current."""
    if fault.kind == "short_circuit":
        return {"fault_type": fault.type}
    if fault.kind == "ct_saturation":
        return {"knee_a": fault.knee_a}
    return {}


def plant_points(cfg: Any) -> dict[str, tuple[str, str | None]] | None:
    """Plant-quantity points (device/point) → (the equipment they read, its plant section or None);
    None when the site has no plant (what :func:`check_target` needs, without the model)."""
    if cfg.plant is None:
        return None
    sections = {x.equipment: sec for _, sec, x in cfg.plant.items()}
    return {f"{d.name}/{p.name}": (p.signal.equipment, sections.get(p.signal.equipment))
            for d in cfg.devices for p in d.points if p.signal is not None and p.signal.kind == "plant"}


def check_target(plant: dict[str, tuple[str, str | None]] | None, keys: list[str], kind: str) -> str | None:
    """Why ``kind`` cannot apply to the points ``keys`` (device/point), or None; ``plant``: :func:`plant_points`."""
    if plant is None:
        return f"{kind} is a plant event: the site needs a `plant:` section"
    for key in keys:
        got = plant.get(key)
        if got is None:
            return f"{kind} on {key}: the point is not a plant quantity; target a point that reads the equipment"
        equipment, section = got
        if kind != "loss_of_supply" and section != SECTION[kind]:
            return (f"{kind} on {key}: the point reads {equipment}, not a plant {SECTION[kind].rstrip('s')}; "
                    f"{kind} applies to the plant's {SECTION[kind]}")
    return None
