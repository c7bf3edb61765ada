"""Modbus TCP: site-file models, register codec (word/byte order) and defaults."""

from gateway.protocols import ProtocolSpec

PROTOCOL = ProtocolSpec(name="modbus", title="Modbus TCP", device_model="gateway.protocols.modbus.config:ModbusDevice", standard_port=502, address_key="address")
