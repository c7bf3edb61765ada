"""DNP3 master driver (``Dnp3Source``) and the codec it shares with the emulated outstation."""

from gateway.southbound.dnp3.commands import CommandResult
from gateway.southbound.dnp3.master import Dnp3Source

Driver = Dnp3Source

__all__ = ["Driver", "Dnp3Source", "CommandResult"]
