"""The public input models: one simulated point and where its value lives in Modbus."""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from firmware_sim.spec import FaultSpec, SignalSpec

Table = Literal["coil", "discrete_input", "holding", "input"]
BIT_TABLES = ("coil", "discrete_input")
TYPE_WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}


class RegisterLayout(BaseModel):
    """Where and how a point appears in its device's Modbus tables.

    Registers hold ``raw = round((value - offset) / scale)`` for integer types (saturated
    at the type's range, quality OVERFLOW) or float32 of ``(value - offset) / scale``.
    A ``bool`` bit is ``raw != 0``: a breaker position (1 open, 2 closed) with
    ``offset: 1`` shows closed = 1, and a coil write of b sets the state ``b*scale + offset``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: Table
    address: int = Field(ge=0, le=65535)
    type: Literal["bool", "int16", "uint16", "int32", "uint32", "float32"] = "uint16"
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> "RegisterLayout":
        if (self.table in BIT_TABLES) != (self.type == "bool"):
            raise ValueError(
                f"type {self.type} does not fit the {self.table} table: coils and discrete inputs are bool, "
                "holding and input registers are int16/uint16/int32/uint32/float32"
            )
        if self.scale == 0:
            raise ValueError("scale must not be 0 (engineering = raw * scale + offset)")
        if self.address + self.width - 1 > 65535:
            raise ValueError(f"{self.type} at {self.address} runs past address 65535")
        return self

    @property
    def width(self) -> int:
        return TYPE_WIDTH[self.type]


with warnings.catch_warnings():
    # `register` is the agreed field name; it shadows only BaseModel's ABC registration helper
    warnings.filterwarnings("ignore", message='Field name "register"')

    class SimPoint(BaseModel):
        """One point of one emulated device. ``signal=None`` is a setpoint held until a command."""

        model_config = ConfigDict(extra="forbid", frozen=True)

        device: str = Field(min_length=1)
        name: str = Field(min_length=1)
        signal: SignalSpec | None = None
        faults: list[FaultSpec] = Field(default_factory=list)
        deadband: float = Field(0.0, ge=0)
        register: RegisterLayout | None = None
        table_sizes: dict[Table, int] | None = Field(None, description="sizes of this device's tables (merged per device)")
