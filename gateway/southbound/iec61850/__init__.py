"""IEC 61850 MMS client driver (libiec61850 via ctypes): reports, polling and controls."""

from gateway.southbound.iec61850.driver import ControlResult, MmsSource

Driver = MmsSource

__all__ = ["Driver", "MmsSource", "ControlResult"]
