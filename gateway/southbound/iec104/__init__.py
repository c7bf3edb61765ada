"""IEC 60870-5-104 client driver (controlling station, c104): GI, spontaneous data, commands."""

from gateway.southbound.iec104.driver import Iec104CommandResult, Iec104Source

Driver = Iec104Source

__all__ = ["Driver", "Iec104Source", "Iec104CommandResult"]
