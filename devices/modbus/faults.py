"""Fault injection for an emulated Modbus device, as plain data.

The server consults ``server.faults`` on every request, so a fault script can swap it at
any moment (``server.faults = ModbusFaults(silent=True)``). Order: ``refuse`` closes every
connection (and each new one at once), ``disconnect`` closes a connection on its next request,
``silent`` swallows requests, then a matching forced ``exception`` replaces the normal answer;
the reply is then corrupted (``wrong_tid``, ``short_reply``), held (``delay_s`` + up to
``jitter_s``) and written at ``trickle_bps`` bytes per second.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: exception codes a real device may return (Modbus Application Protocol v1.1b3, section 7)
EXCEPTION_CODES = {1, 2, 3, 4, 5, 6, 8, 10, 11}


class ForcedException(BaseModel):
    """Answer requests of ``function`` (any when None) touching [start, end] with ``code``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: int = Field(description="Modbus exception code, e.g. 4 (server device failure), 6 (busy), 11 (gateway target failed)")
    function: int | None = Field(None, ge=1, le=127, description="function code; None: every function")
    start: int = Field(0, ge=0, le=65535, description="first address of the range")
    end: int = Field(65535, ge=0, le=65535, description="last address of the range (inclusive)")

    @model_validator(mode="after")
    def _valid(self) -> "ForcedException":
        if self.code not in EXCEPTION_CODES:
            raise ValueError(f"exception code {self.code} is not a Modbus exception; use one of {sorted(EXCEPTION_CODES)}")
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}; give an inclusive address range")
        return self

    def matches(self, function: int, first: int, last: int) -> bool:
        return (self.function is None or self.function == function) and first <= self.end and last >= self.start


class ModbusFaults(BaseModel):
    """Per-server faults. The default instance is the healthy device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    silent: bool = Field(False, description="read the request but neither execute nor answer it (a mute device)")
    delay_s: float = Field(0.0, ge=0, le=600, description="fixed delay before every reply")
    exceptions: tuple[ForcedException, ...] = Field((), description="forced exception answers (first match wins)")
    jitter_s: float = Field(0.0, ge=0, le=600, description="extra random delay, uniform in [0, jitter_s], per reply")
    trickle_bps: float = Field(0.0, ge=0, description="write replies at this many bytes per second (0: at once)")
    wrong_tid: bool = Field(False, description="answer with a transaction id that does not match the request")
    short_reply: int = Field(0, ge=0, le=255, description="cut this many bytes off the end of every reply")
    disconnect: bool = Field(False, description="close the connection on a request instead of answering it")
    refuse: bool = Field(False, description="drop every connection and close new ones as soon as they open")

    @property
    def healthy(self) -> bool:
        return self == HEALTHY_VALUES

    @property
    def corrupts(self) -> bool:
        return self.wrong_tid or self.short_reply > 0

    def forced(self, function: int, first: int, last: int) -> int | None:
        """The exception code to force for this request, if any."""
        for f in self.exceptions:
            if f.matches(function, first, last):
                return f.code
        return None


HEALTHY = ModbusFaults()
HEALTHY_VALUES = HEALTHY


def merge(faults: list[Any]) -> ModbusFaults:
    """Merge the active comms faults of one Modbus device into its server's fault hook."""
    kw: dict[str, Any] = {}
    exc: list[ForcedException] = []
    for f in faults:
        k = f.kind
        if k == "silent":
            kw["silent"] = True
        elif k == "disconnect":
            kw["refuse"] = True
        elif k == "delay":
            kw["delay_s"] = max(kw.get("delay_s", 0.0), f.ms / 1000)
            kw["jitter_s"] = max(kw.get("jitter_s", 0.0), f.jitter_ms / 1000)
        elif k == "trickle":
            kw["trickle_bps"] = min(kw.get("trickle_bps", f.bytes_per_s), f.bytes_per_s)
        elif k == "exception":
            exc.append(ForcedException(code=f.code, function=f.function, start=f.start, end=f.end))
        elif k == "wrong_tid":
            kw["wrong_tid"] = True
        elif k == "short_reply":
            kw["short_reply"] = max(kw.get("short_reply", 0), f.bytes)
    return ModbusFaults(exceptions=tuple(exc), **kw)
