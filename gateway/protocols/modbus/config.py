"""Modbus TCP site-file models: register tables, data types, word/byte order, block-read options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from firmware_sim.registers import WIDTH, DataType, ModbusTable, Order  # noqa: F401 - part of this API
from gateway.protocols.modbus.rules import ModbusPointRules
from gateway.site.model import DeviceBase, PointBase, _Model


class ModbusPoint(ModbusPointRules, PointBase):
    table: ModbusTable
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: DataType = "uint16"
    word_order: Order = Field("big", description="order of the 16-bit words of a 32-bit value")
    byte_order: Order = Field("big", description="order of the bytes inside each word")

    @model_validator(mode="after")
    def _bits(self) -> "ModbusPoint":
        bit_table = self.table in ("coil", "discrete_input")
        if bit_table and self.type != "bool":
            raise ValueError(f"a {self.table} point must have type bool, not {self.type}")
        if not bit_table and self.type == "bool":
            raise ValueError(f"type bool belongs to coil or discrete_input, not the {self.table} table")
        if self.address + self.width - 1 > 65535:
            raise ValueError("value runs past address 65535")
        return self


class ModbusOptions(_Model):
    max_registers: int = Field(125, ge=1, le=125, description="largest block read (FC3/FC4)")
    max_bits: int = Field(2000, ge=1, le=2000, description="largest block read (FC1/FC2)")
    max_gap: int = Field(8, ge=0, description="unused addresses a block read may span to merge neighbours")
    tables: dict[ModbusTable, int] = Field(
        default_factory=dict, description="size of each table in the emulated device (default: just past the last point)"
    )


class ModbusDevice(DeviceBase):
    protocol: Literal["modbus"]
    unit_id: int = Field(1, ge=0, le=255)
    modbus: ModbusOptions = Field(default_factory=ModbusOptions)
    points: list[ModbusPoint] = Field(min_length=1)

    def point_addresses(self, p: ModbusPoint) -> list[tuple]:  # type: ignore[override]
        return [(p.table, "address", a) for a in range(p.address, p.address + p.width)]

    @model_validator(mode="after")
    def _inside_tables(self) -> "ModbusDevice":
        for table, size in self.modbus.tables.items():
            for p in self.points:
                if p.table == table and p.address + p.width > size:
                    raise ValueError(f"@modbus.tables.{table}: point {p.name!r} lies beyond the table size {size}; enlarge it")
        return self



ModbusPoint.model_rebuild()
