"""Helpers of Modbus points that the gateway's driver calls, without pydantic (model and runtime twin share them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from firmware_sim.registers import WIDTH
from gateway.site.tables import Rules


class ModbusPointRules(Rules):
    __slots__ = ()
    if TYPE_CHECKING:
        type: str

    @property
    def width(self) -> int:
        """registers (or bits) occupied"""
        return WIDTH[self.type]
