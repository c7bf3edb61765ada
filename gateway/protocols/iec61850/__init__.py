"""IEC 61850 (MMS): site-file models and the libiec61850 ctypes binding (client and server
prototypes) that the gateway's client and the emulated IEDs share. The binding is imported only
by those who use it (``gateway.protocols.iec61850.libiec``): it loads the shared library."""

from gateway.protocols import ProtocolSpec

PROTOCOL = ProtocolSpec(name="iec61850", title="IEC 61850 MMS", device_model="gateway.protocols.iec61850.config:Iec61850Device", standard_port=102, address_key="reference")
