"""Modbus TCP: site-file models, register codec (word/byte order) and defaults."""

from gateway.protocols import ProtocolSpec
from gateway.protocols.modbus.config import ModbusDevice

PROTOCOL = ProtocolSpec(name="modbus", title="Modbus TCP", device=ModbusDevice, standard_port=502, address_key="address")
