"""Emulated DNP3 outstations (IEEE 1815-2012 over TCP)."""

from devices.dnp3.outstation import Dnp3Outstation

__all__ = ["Dnp3Outstation"]
