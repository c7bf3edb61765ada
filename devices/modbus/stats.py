"""Counters of an emulated Modbus server: per connection (cheap slots dataclass, updated on
the hot path) and per server (a pydantic snapshot, summed on demand)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel

#: malformed-frame reasons
PROTOCOL_ID = "protocol_id"  # MBAP protocol id != 0: frame dropped (spec: not a Modbus frame)
LENGTH = "length"  # MBAP length outside 2..254: framing lost, connection closed
PDU_LENGTH = "pdu_length"  # PDU shorter/longer than its function needs: exception 03
TRUNCATED = "truncated"  # connection closed with part of an ADU received


@dataclass(slots=True)
class ConnStats:
    requests: int = 0  # complete, well-framed ADUs addressed to us
    responses: int = 0
    exceptions: Counter = field(default_factory=Counter)  # exception code -> count
    malformed: Counter = field(default_factory=Counter)  # reason -> count
    ignored_unit: int = 0  # ADUs for another unit id: not answered
    silenced: int = 0  # requests swallowed by the `silent` fault
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, other: "ConnStats") -> None:
        self.requests += other.requests
        self.responses += other.responses
        self.exceptions.update(other.exceptions)
        self.malformed.update(other.malformed)
        self.ignored_unit += other.ignored_unit
        self.silenced += other.silenced
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out


class ServerStats(BaseModel):
    """Totals over every connection the server has had, plus connection counts."""

    requests: int = 0
    responses: int = 0
    exceptions: dict[int, int] = {}
    malformed: dict[str, int] = {}
    ignored_unit: int = 0
    silenced: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    connections_active: int = 0
    connections_total: int = 0
    connections_rejected: int = 0

    @classmethod
    def of(cls, total: ConnStats, active: int, accepted: int, rejected: int) -> "ServerStats":
        return cls(
            requests=total.requests,
            responses=total.responses,
            exceptions=dict(total.exceptions),
            malformed=dict(total.malformed),
            ignored_unit=total.ignored_unit,
            silenced=total.silenced,
            bytes_in=total.bytes_in,
            bytes_out=total.bytes_out,
            connections_active=active,
            connections_total=accepted,
            connections_rejected=rejected,
        )
