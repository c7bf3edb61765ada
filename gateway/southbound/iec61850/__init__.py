from gateway.southbound.iec61850.driver import ControlResult, MmsSource

__all__ = ["MmsSource", "ControlResult"]
