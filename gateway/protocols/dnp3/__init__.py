"""DNP3 (IEEE 1815): site-file models and the wire codec (link layer, objects, flags) that the
gateway's master and the emulated outstation share."""

from gateway.protocols import ProtocolSpec

PROTOCOL = ProtocolSpec(name="dnp3", title="DNP3", device_model="gateway.protocols.dnp3.config:Dnp3Device", standard_port=20000, address_key="index")
