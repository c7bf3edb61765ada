"""IEC 60870-5-104: site-file models and the c104 (lib60870-C) adapter that the gateway's controlling
station and the emulated RTUs share. The adapter is imported only by those who use it
(``gateway.protocols.iec104.adapter``): it loads the c104 extension."""

from gateway.protocols import ProtocolSpec

PROTOCOL = ProtocolSpec(name="iec104", title="IEC 60870-5-104", device_model="gateway.protocols.iec104.config:Iec104Device", standard_port=2404, address_key="ioa")
