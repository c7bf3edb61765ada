"""IEC 61850 (MMS): site-file models and the libiec61850 ctypes binding (client and server
prototypes) that the gateway's client and the emulated IEDs share. The binding is imported only
by those who use it (``gateway.protocols.iec61850.libiec``): it loads the shared library."""

from gateway.protocols import ProtocolSpec
from gateway.protocols.iec61850.config import Iec61850Device

PROTOCOL = ProtocolSpec(name="iec61850", title="IEC 61850 MMS", device=Iec61850Device, standard_port=102, address_key="reference")
