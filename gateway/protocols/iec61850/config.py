"""IEC 61850 (MMS) site-file models: object references, functional constraints, IED options."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from gateway.protocols.iec61850.rules import DEFAULT_RCB_INSTANCES, Iec61850OptionsRules  # noqa: F401 - part of this API
from gateway.site.model import DeviceBase, Name, PointBase, _Model


class MmsPoint(PointBase):
    reference: str = Field(
        description="IEC 61850 object reference of the data attribute, LD/LN.DO[.DA] e.g. F1PROT/MMXU1.TotW.mag.f"
    )
    fc: Literal["MX", "ST", "CO", "SP", "CF"] = "MX"
    db: int | None = Field(
        None, ge=0, le=100_000, description="IED deadband of mag (0.001 % of range); default: 100, or the point's deadband if wider"
    )
    zero_db: int = Field(0, ge=0, le=100_000, description="IED zero deadband (0.001 % of range): |mag| below it is 0")
    range: tuple[float, float] | None = Field(
        None, description="IED rangeC [min, max] of mag in served units; default: a per-quantity range"
    )

    @field_validator("range")
    @classmethod
    def _range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError("range must be [min, max] with min < max")
        return v

    @field_validator("reference")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_]{1,64}/[A-Za-z0-9_]+(\.[A-Za-z0-9_\[\]]+)+$", v):
            raise ValueError("expected an object reference LD/LN.DO[.DA], e.g. F1PROT/MMXU1.TotW.mag.f")
        return v


#: RCB instances per data set and kind: libiec61850 serves any number, but each buffered one keeps its own
#: report buffer (REPORT_BUFFER_BYTES), and an IED takes at most a handful of clients anyway
MAX_RCB_INSTANCES = 16


class Iec61850Options(Iec61850OptionsRules, _Model):
    ied_name: Name | None = Field(None, description="IED name (prefix of the logical devices); default: device name")
    scl: str | None = Field(None, description="SCL (.icd/.cid/.iid/.scd) or libiec61850 .cfg model to serve instead of the generated one")
    reports: bool = True
    buffered: bool = True
    receive_tick_ms: float = Field(
        1.0, ge=0, le=100,
        description="gateway: how long the MMS client naps when nothing has arrived, in ms (a report waits up to"
                    " this long before it is read); 0 = libiec61850's own receive thread, which naps 10 ms",
    )
    brcb_instances: int | None = Field(
        None, ge=0, le=MAX_RCB_INSTANCES,
        description="emulated IED: buffered RCB instances per data set (one per client that owns one); default 2",
    )
    urcb_instances: int | None = Field(
        None, ge=0, le=MAX_RCB_INSTANCES,
        description="emulated IED: unbuffered RCB instances per data set; default 2",
    )
    goose_interface: str | None = Field(
        None, description="publish breaker position and trips as GOOSE on this interface (only inside a lab namespace)"
    )
    goose_subscribe: str | None = Field(
        None, description="gateway: also take the IED's GOOSE (position, trips) as events, received on this interface"
    )

    @model_validator(mode="after")
    def _instances_need_generated_model(self) -> "Iec61850Options":
        if self.scl and (self.brcb_instances is not None or self.urcb_instances is not None):
            raise ValueError(
                "brcb_instances/urcb_instances shape the generated model; an SCL/.cfg model brings its own"
                " report control blocks: set RptEnabled max (SCL) or remove the option"
            )
        return self


class Iec61850Device(DeviceBase):
    protocol: Literal["iec61850"]
    iec61850: Iec61850Options = Field(default_factory=Iec61850Options)
    points: list[MmsPoint] = Field(min_length=1)

    address_key: ClassVar[str] = "reference"

    def point_addresses(self, p: MmsPoint) -> list[tuple]:  # type: ignore[override]
        return [(p.reference,)]



MmsPoint.model_rebuild()
