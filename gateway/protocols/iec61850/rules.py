"""Helpers of IEC 61850 options that the gateway's driver calls, without pydantic (model and runtime twin share them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.site.tables import Rules

#: report control block instances per dataset and kind when the options leave it open
DEFAULT_RCB_INSTANCES = 2


class Iec61850OptionsRules(Rules):
    __slots__ = ()
    if TYPE_CHECKING:
        brcb_instances: int | None
        urcb_instances: int | None

    def rcb_instances(self, buffered: bool) -> int:
        n = self.brcb_instances if buffered else self.urcb_instances
        return DEFAULT_RCB_INSTANCES if n is None else n
