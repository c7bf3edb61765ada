"""The CIM site model shared by every layer: network (substations, bays, equipment), measurement
mapping, and the protocol-neutral bases of points and devices. Protocol models live in gateway/protocols/."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from firmware_sim.spec import FaultSpec, LoadGroup, SignalSpec
from gateway.site.cimtypes import (  # noqa: F401 - re-exported: part of the site model's API
    AVC_FLAG_TYPES,
    CIM_TYPE_OF,
    EXTENSION_PREFIX,
    KIND_OF_TYPE,
    MRID_NAMESPACE,
    SWITCH_POSITIONS,
    UNITS_OF_TYPE,
    EquipmentType,
    MeasurementKind,
    MeasurementType,
    PhaseCode,
    UnitMultiplier,
    UnitSymbol,
    cim_measurement_type,
)
from gateway.site.duration import MIN_POLL, parse_duration  # noqa: F401 - re-exported

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Name = Annotated[str, Field(pattern=_NAME, max_length=64, description="letters, digits, '_', '.', '-'; used in topics")]


def _min_poll(v: float) -> float:
    if v < MIN_POLL:
        raise ValueError(f"{v * 1000:g} ms is under the 1 ms minimum poll interval; use e.g. 100ms or 1s")
    return v


#: a poll period: a Duration of at least a millisecond
PollInterval = Annotated[float, BeforeValidator(parse_duration), Field(gt=0), AfterValidator(_min_poll)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


#: seconds, written as a number or as 500ms / 2s / 5m / 1h
Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


# ---------------------------------------------------------------- network model (CIM)


class Equipment(_Model):
    name: Name
    type: EquipmentType
    description: str = ""
    mrid: uuid.UUID | None = None


class VoltageLevel(_Model):
    """CIM VoltageLevel of a substation, with its BaseVoltage (levels of one nominal voltage share one)."""

    name: Name
    base_voltage_kv: float = Field(gt=0, description="nominal voltage (kV): the CIM BaseVoltage.nominalVoltage")
    high_limit_kv: float | None = Field(None, gt=0, description="highest operating voltage (kV), CIM highVoltageLimit")
    low_limit_kv: float | None = Field(None, gt=0, description="lowest operating voltage (kV), CIM lowVoltageLimit")
    description: str = ""
    mrid: uuid.UUID | None = Field(None, description="default: UUID5 of site/substation/level name")

    @model_validator(mode="after")
    def _limits(self) -> "VoltageLevel":
        lo, hi, kv = self.low_limit_kv, self.high_limit_kv, self.base_voltage_kv
        if lo is not None and lo > kv:
            raise ValueError(f"@low_limit_kv: {lo:g} kV is above the base voltage {kv:g} kV; the low limit is below it")
        if hi is not None and hi < kv:
            raise ValueError(f"@high_limit_kv: {hi:g} kV is below the base voltage {kv:g} kV; the high limit is above it")
        return self


def kv_name(kv: float) -> str:
    """Name of a voltage level derived from a bay's ``voltage_kv`` (``11kV``)."""
    return f"{kv:g}kV"


class Bay(_Model):
    name: Name
    description: str = ""
    voltage_level: Name | None = Field(None, description="name of one of the substation's voltage_levels")
    voltage_kv: float | None = Field(
        None, gt=0, description="the bay's nominal voltage; with voltage_levels: taken from voltage_level (old files: set here)"
    )
    equipment: list[Equipment] = Field(min_length=1)
    mrid: uuid.UUID | None = None


class Substation(_Model):
    name: Name
    description: str = ""
    voltage_levels: list[VoltageLevel] = Field(
        default_factory=list, description="CIM VoltageLevels; when absent, one per distinct bay voltage_kv (derived)"
    )
    bays: list[Bay] = Field(min_length=1)
    mrid: uuid.UUID | None = None

    @model_validator(mode="after")
    def _bays_in_levels(self) -> "Substation":
        """Each bay belongs to one declared level (its voltage_kv then comes from it); old files: none declared."""
        errors: list[str] = []
        _unique([v.name for v in self.voltage_levels], "voltage_levels", errors)
        levels = {v.name: v for v in self.voltage_levels}
        names = ", ".join(levels)
        for i, b in enumerate(self.bays):
            here = f"@bays[{i}]"
            if not levels:
                if b.voltage_level is not None:
                    errors.append(f"{here}.voltage_level: substation {self.name} declares no voltage_levels; add"
                                  f" `voltage_levels: [{{name: {b.voltage_level}, base_voltage_kv: ...}}]` or drop it")
                continue
            if b.voltage_level is None:
                fits = [v.name for v in self.voltage_levels if b.voltage_kv is not None and v.base_voltage_kv == b.voltage_kv]
                if len(fits) != 1:
                    errors.append(f"{here}.voltage_level: bay {b.name} belongs to no voltage level; set one of: {names}")
                    continue
                b.voltage_level = fits[0]
            vl = levels.get(b.voltage_level)
            if vl is None:
                errors.append(f"{here}.voltage_level: no voltage level {b.voltage_level!r} in substation {self.name}; use one of: {names}")
            elif b.voltage_kv is not None and b.voltage_kv != vl.base_voltage_kv:
                errors.append(f"{here}.voltage_kv: {b.voltage_kv:g} kV disagrees with voltage level {vl.name}"
                              f" ({vl.base_voltage_kv:g} kV); drop voltage_kv (the level gives it)")
            else:
                b.voltage_kv = vl.base_voltage_kv
        if errors:
            raise ValueError("\n".join(errors))
        return self

    @property
    def levels_derived(self) -> bool:
        """True for an old site file: no voltage_levels, so they are derived from the bays' voltage_kv."""
        return not self.voltage_levels

    def levels(self) -> list[VoltageLevel]:
        """The declared voltage levels, or (old files) one per distinct bay ``voltage_kv``, named like ``11kV``."""
        if self.voltage_levels:
            return self.voltage_levels
        kvs = dict.fromkeys(b.voltage_kv for b in self.bays if b.voltage_kv is not None)
        return [VoltageLevel(name=kv_name(kv), base_voltage_kv=kv) for kv in kvs if kv is not None]

    def level_of(self, bay: Bay) -> str | None:
        """Name of the voltage level a bay belongs to (None: an old file's bay without voltage_kv)."""
        if self.voltage_levels:
            return bay.voltage_level
        return kv_name(bay.voltage_kv) if bay.voltage_kv is not None else None


# ---------------------------------------------------------------- points


class MeasurementMap(_Model):
    """The CIM Measurement a point feeds (IEC 61970-301)."""

    equipment: str = Field(description="substation/bay/equipment path of the PowerSystemResource")
    type: MeasurementType
    kind: MeasurementKind | None = Field(None, description="default: from the measurementType")
    unit: UnitSymbol | None = Field(None, description="default: the measurementType's SI unit")
    multiplier: UnitMultiplier = "none"
    phases: PhaseCode = "none"
    name: str | None = Field(None, description="Measurement name; default: the point name")
    mrid: uuid.UUID | None = Field(None, description="default: UUID5 of the site/equipment/measurement names")

    @model_validator(mode="after")
    def _consistent(self) -> "MeasurementMap":
        expected = KIND_OF_TYPE[self.type]
        if self.kind is None:
            self.kind = expected  # type: ignore[assignment]
        elif self.kind != expected:
            raise ValueError(f"measurementType {self.type} is a {expected}, not a {self.kind}")
        allowed = UNITS_OF_TYPE[self.type]
        if self.unit is None:
            self.unit = allowed[0]  # type: ignore[assignment]
        elif self.unit not in allowed:
            raise ValueError(f"unit {self.unit!r} does not fit {self.type}; allowed: {', '.join(allowed)}")
        return self


class PointBase(_Model):
    name: Name
    measurement: MeasurementMap
    scale: float = Field(1.0, description="engineering = raw * scale + offset")
    offset: float = 0.0
    deadband: float = Field(0.0, ge=0, description="report-by-exception threshold, engineering units (analogs)")
    value_map: dict[int, int] | None = Field(
        None, description="raw → reported code for discretes, e.g. {0: 1, 1: 2} for a single-bit breaker position"
    )
    signal: SignalSpec | None = Field(None, description="how the emulated firmware produces this point")
    faults: list[FaultSpec] = Field(default_factory=list, description="faults active from start (emulator)")
    command: "CommandPolicy | None" = None


class CommandPolicy(_Model):
    """Whether and by whom a point may be operated from the northbound side."""

    enabled: bool = False
    operators: list[str] = Field(default_factory=list, description="allowed operator ids or roles (empty: any)")
    mode: Literal["direct", "sbo"] = "direct"
    ttl: Duration = Field(10.0, description="a command older than this is refused")


class ConnectionOptions(_Model):
    """How the emulated device treats its TCP peers (devices/netguard.py)."""

    max_connections: int = Field(16, ge=1, le=1024, description="open connections at most; at the cap the oldest idle one is closed for a newcomer")
    idle_timeout: Annotated[float, BeforeValidator(parse_duration), Field(ge=0)] = Field(
        120.0, description="close a connection that sent nothing this long (0: never)"
    )
    evict_idle_after: Duration = Field(5.0, description="at the cap, a connection idle this long may be closed for a newcomer")


class DeviceBase(_Model):
    name: Name
    kind: Literal["rtu", "ied", "meter"]
    description: str = ""
    host: str = Field("127.0.0.1", description="address the emulated device binds and the gateway connects to")
    bind_all_interfaces: bool = Field(
        False, description="allow host 0.0.0.0/:: (the emulated device then listens on every network interface)"
    )
    port: int = Field(ge=1, le=65535)
    poll_interval: PollInterval = Field(1.0, description="seconds (or 500ms, 2s, ...), at least 1ms")
    timeout: Duration = 1.0
    enabled: bool = True
    groups: list[LoadGroup] = Field(default_factory=list, description="load groups for `derived` signals")
    connections: ConnectionOptions = Field(default_factory=ConnectionOptions, description="emulated device's TCP peer policy")

    #: the key of a point that names its protocol address (for error paths)
    address_key: ClassVar[str] = "address"
    if TYPE_CHECKING:  # every protocol's device declares its own typed list of points
        points: Sequence[PointBase]
        protocol: str

    def point_addresses(self, p: "PointBase") -> list[tuple]:
        """Every protocol address a point occupies; two points may not share one."""
        raise NotImplementedError

    @staticmethod
    def describe_address(addr: tuple) -> str:
        return " ".join(str(a) for a in addr)

    @model_validator(mode="after")
    def _no_overlap(self) -> "DeviceBase":
        owner: dict[tuple, str] = {}
        for i, p in enumerate(self.points):  # type: ignore[attr-defined]
            for addr in self.point_addresses(p):
                if addr in owner:
                    raise ValueError(
                        f"@points[{i}].{self.address_key}: point {p.name!r} overlaps point {owner[addr]!r} at"
                        f" {self.describe_address(addr)}; give each point its own addresses"
                    )
                owner[addr] = p.name
        return self

    @model_validator(mode="after")
    def _not_everywhere_by_accident(self) -> "DeviceBase":
        if self.host in ("0.0.0.0", "::") and not self.bind_all_interfaces:
            raise ValueError(
                f"@host: {self.host} would expose the emulated device on every network interface; use 127.0.0.1, "
                "or add `bind_all_interfaces: true` to the device if that is meant"
            )
        return self

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if v == "localhost":
            return v
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"expected an IP address such as 127.0.0.1, got {v!r}") from None
        return v


class BaseVoltage(_Model):
    """CIM BaseVoltage: one nominal voltage of the site, shared by its voltage levels, ends and equipment."""

    nominal_kv: float = Field(gt=0, description="CIM nominalVoltage (kV)")
    name: Name | None = Field(None, description="default: like 11kV")
    mrid: uuid.UUID | None = Field(None, description="default: UUID5 of site/BaseVoltage/11kV")


class Site(_Model):
    name: Name
    description: str = ""
    operator: str = Field("", description="the network operator (DNO) running the site")
    mrid: uuid.UUID | None = None
    base_voltages: list[BaseVoltage] = Field(
        default_factory=list, description="the site's BaseVoltages (names, mRIDs); default: one per voltage level voltage"
    )

    @model_validator(mode="after")
    def _one_per_voltage(self) -> "Site":
        seen: dict[float, int] = {}
        for i, b in enumerate(self.base_voltages):
            if b.nominal_kv in seen:
                raise ValueError(f"@base_voltages[{i}].nominal_kv: {b.nominal_kv:g} kV is declared twice (also [{seen[b.nominal_kv]}])")
            seen[b.nominal_kv] = i
        return self


def check_base_voltages(site: Site, substations: Sequence[Substation], errors: list[str]) -> None:
    """With ``site.base_voltages`` declared, every voltage level's voltage must be one of them."""
    if not site.base_voltages:
        return
    have = {b.nominal_kv for b in site.base_voltages}
    listed = ", ".join(f"{kv:g}" for kv in sorted(have, reverse=True))
    for si, s in enumerate(substations):
        for li, v in enumerate(s.voltage_levels):
            if v.base_voltage_kv not in have:
                errors.append(f"@substations[{si}].voltage_levels[{li}].base_voltage_kv: {v.base_voltage_kv:g} kV is not one of"
                              f" site.base_voltages ({listed} kV); add it there")
        if s.levels_derived:
            for bi, b in enumerate(s.bays):
                if b.voltage_kv is not None and b.voltage_kv not in have:
                    errors.append(f"@substations[{si}].bays[{bi}].voltage_kv: {b.voltage_kv:g} kV is not one of"
                                  f" site.base_voltages ({listed} kV); add it there")


def level_notes(substations: Sequence[Substation]) -> list[str]:
    """What an old site file (no ``voltage_levels``) gets derived, said by ``validate`` and ``cim export``."""
    out = []
    for s in substations:
        if s.levels_derived and (levels := s.levels()):
            out.append(f"substation {s.name}: no voltage_levels; derived {', '.join(v.name for v in levels)} from the bays'"
                       " voltage_kv (declare voltage_levels to name them and give them limits and mRIDs)")
    return out


def type_notes(devices: Sequence[DeviceBase], n: int | None = None) -> list[str]:
    """A site still using gridgate v1's ``Voltage`` is told CIM's name (said by ``validate``); ``n``: the number
    of such points, counted by the caller (a site validated in parts, gateway/sitesummary.py)."""
    if n is None:
        n = sum(p.measurement.type == "Voltage" for d in devices for p in d.points)
    if not n:
        return []
    return [f"{n} point{'s' if n != 1 else ''} use measurement type Voltage, gridgate v1's name for a line-to-line voltage:"
            " payloads carry cimMeasurementType LineToLineVoltage; new sites write LineToLineVoltage (the topic level"
            " follows the type, so existing subscribers keep .../Voltage/... until you change it)"]


def _unique(names: list[str], where: str, errors: list[str]) -> None:
    first: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in first:
            errors.append(f"@{where}[{i}].name: {n!r} is used twice (also [{first[n]}]); names must be unique")
        else:
            first[n] = i


PointBase.model_rebuild()
