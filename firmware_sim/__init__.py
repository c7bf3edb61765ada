"""Simulated firmware of the emulated RTUs and IEDs: a sampling loop (C core, Python
reference) that updates every point of every emulated device at a fixed tick."""

from firmware_sim.firmware import Firmware
from firmware_sim.modbus import ModbusDataModel, ReadOnlyPoint
from firmware_sim.model import RegisterLayout, SimPoint
from firmware_sim.plan import PlanError

__all__ = ["Firmware", "SimPoint", "RegisterLayout", "ModbusDataModel", "ReadOnlyPoint", "PlanError"]
