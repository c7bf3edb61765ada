"""IEC 60870-5-104 site-file models: common address, IOAs and ASDU types, the APCI timers and windows."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gateway.protocols.iec104.rules import Iec104PointRules
from gateway.site.model import DeviceBase, Duration, PointBase, _Model

#: the monitoring types a point may carry (ASDU type identifiers, IEC 60870-5-101 §7.2.1)
MonitorType = Literal[
    "M_SP_NA_1", "M_SP_TB_1",  # single point
    "M_DP_NA_1", "M_DP_TB_1",  # double point
    "M_ST_NA_1", "M_ST_TB_1",  # step position (tap changers)
    "M_ME_NB_1", "M_ME_TE_1",  # scaled value
    "M_ME_NC_1", "M_ME_TF_1",  # short float
    "M_IT_NA_1", "M_IT_TB_1",  # integrated totals
]
#: the command type a controllable point is operated with, by the monitoring type it reports with
COMMAND_OF: dict[str, str] = {
    "M_SP_NA_1": "C_SC_NA_1", "M_SP_TB_1": "C_SC_NA_1",
    "M_DP_NA_1": "C_DC_NA_1", "M_DP_TB_1": "C_DC_NA_1",
    "M_ST_NA_1": "C_RC_NA_1", "M_ST_TB_1": "C_RC_NA_1",
    "M_ME_NB_1": "C_SE_NB_1", "M_ME_TE_1": "C_SE_NB_1",
    "M_ME_NC_1": "C_SE_NC_1", "M_ME_TF_1": "C_SE_NC_1",
}


class Iec104Point(Iec104PointRules, PointBase):
    ioa: int = Field(ge=1, le=16777215, description="information object address of the monitored value")
    type: MonitorType = Field(description="ASDU type of the monitored value, e.g. M_ME_NC_1 (float) or M_DP_TB_1")
    command_ioa: int | None = Field(
        None, ge=1, le=16777215,
        description="IOA of the command object (C_SC/C_DC/C_RC/C_SE) when the point is controllable; default: ioa + 1000",
    )
    cyclic: Duration | None = Field(None, description="also transmit cyclically (COT 1) at this period")

    @model_validator(mode="after")
    def _command_type(self) -> "Iec104Point":
        if self.command is not None and self.command.enabled and self.type not in COMMAND_OF:
            raise ValueError(f"a {self.type} point cannot be operated (integrated totals have no command type); "
                             "remove command or use a status/measured type")
        return self


class Iec104Endpoint(_Model):
    """A second address of the same station (its backup RTU or second communication unit)."""

    host: str = Field(description="address of the backup connection, e.g. 127.0.0.1")
    port: int = Field(2404, ge=1, le=65535, description="its port (standard 2404)")


class Iec104Options(_Model):
    """APCI parameters (IEC 60870-5-104 §9.6) with the standard's defaults."""

    common_address: int = Field(1, ge=1, le=65534, description="ASDU common address (station address)")
    t0: Duration = Field(30.0, description="connection establishment timeout")
    t1: Duration = Field(15.0, description="timeout of send or test APDUs")
    t2: Duration = Field(10.0, description="acknowledge timeout when no data (t2 < t1)")
    t3: Duration = Field(20.0, description="idle time before a TESTFR")
    k: int = Field(12, ge=1, le=32767, description="max unacknowledged I-frames sent")
    w: int = Field(8, ge=1, le=32767, description="acknowledge after receiving w I-frames (w <= 2k/3)")
    gi_interval: Duration | None = Field(
        600.0, description="the gateway repeats the general interrogation this often (none: only on connect)")
    clock_sync: bool = Field(True, description="the gateway sends C_CS_NA_1 after each general interrogation")
    select_timeout: Duration = Field(10.0, description="an execute must follow its select within this (emulated RTU)")
    max_time_skew: Duration = Field(
        60.0, description="a time tag this far ahead of the gateway's clock, or this far behind the point's last "
                          "one, is not believed: the value is published with the receive time, QUESTIONABLE + inconsistent")
    backup: Iec104Endpoint | None = Field(
        None, description="the gateway fails over to this host/port when the device's connection fails or drops "
                          "(and back again on the next failure); c104 has no redundancy groups")

    @model_validator(mode="after")
    def _apci(self) -> "Iec104Options":
        if self.t2 >= self.t1:
            raise ValueError(f"t2 ({self.t2:g} s) must be shorter than t1 ({self.t1:g} s)")
        if self.w > max(1, (2 * self.k) // 3):
            raise ValueError(f"w ({self.w}) should not exceed two thirds of k ({self.k}); e.g. k: 12, w: 8")
        return self


class Iec104Device(DeviceBase):
    protocol: Literal["iec104"]
    iec104: Iec104Options = Field(default_factory=Iec104Options)
    points: list[Iec104Point] = Field(min_length=1)

    address_key: ClassVar[str] = "ioa"

    @model_validator(mode="after")
    def _backup_elsewhere(self) -> "Iec104Device":
        b = self.iec104.backup
        if b is not None and (b.host, b.port) == (self.host, self.port):
            raise ValueError(f"iec104.backup is the device's own address {b.host}:{b.port}; give the backup "
                             "connection's host/port (the RTU's second communication unit) or remove backup")
        return self

    def point_addresses(self, p: Iec104Point) -> list[tuple]:  # type: ignore[override]
        addrs: list[tuple] = [("ioa", p.ioa)]
        if p.command is not None and p.command.enabled:
            addrs.append(("ioa", p.command_address()))
        return addrs


Iec104Point.model_rebuild()
