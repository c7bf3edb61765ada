"""Helpers of IEC 104 points that the gateway's driver calls, without pydantic (model and runtime twin share them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.site.tables import Rules


class Iec104PointRules(Rules):
    __slots__ = ()
    if TYPE_CHECKING:
        ioa: int
        command_ioa: int | None

    def command_address(self) -> int:
        return self.command_ioa if self.command_ioa is not None else self.ioa + 1000
