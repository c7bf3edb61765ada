"""Emulated Modbus TCP device: asyncio server over a register image."""

from devices.modbus.faults import ForcedException, ModbusFaults
from devices.modbus.model import ArrayDataModel, ModbusDataModel
from devices.modbus.server import ModbusServer
from devices.modbus.stats import ConnStats, ServerStats

__all__ = [
    "ArrayDataModel",
    "ConnStats",
    "ForcedException",
    "ModbusDataModel",
    "ModbusFaults",
    "ModbusServer",
    "ServerStats",
]
