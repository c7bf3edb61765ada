"""Emulated IEC 61850 IEDs (libiec61850 MMS servers) fed by the simulated firmware."""

from devices.iec61850.server import Iec61850Ied

__all__ = ["Iec61850Ied"]
