"""Modbus TCP client driver (pymodbus): block-read planning and register decoding."""

from gateway.southbound.modbus.driver import ModbusSource

Driver = ModbusSource

__all__ = ["Driver", "ModbusSource"]
