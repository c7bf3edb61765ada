"""Simulated firmware of the emulated RTUs and IEDs: a sampling loop (C core, Python
reference) that updates every point of every emulated device at a fixed tick.

The names below are imported on first use (PEP 562): the gateway imports only the small
neutral modules of this package (``spec``, ``quality``, ``registers``), and importing one of
them must not load the sampling core, its C binding and the plant solver (~20 MB).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware_sim.firmware import Firmware
    from firmware_sim.modbus import ModbusDataModel, ReadOnlyPoint
    from firmware_sim.model import RegisterLayout, SimPoint
    from firmware_sim.plan import PlanError

_WHERE = {"Firmware": "firmware", "ModbusDataModel": "modbus", "ReadOnlyPoint": "modbus", "RegisterLayout": "model",
          "SimPoint": "model", "PlanError": "plan"}

__all__ = ["Firmware", "SimPoint", "RegisterLayout", "ModbusDataModel", "ReadOnlyPoint", "PlanError"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"firmware_sim.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'firmware_sim' has no attribute {name!r}")
