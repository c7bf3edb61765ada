"""The site configuration: CIM network model, devices, points and their measurement mapping.

One YAML file describes a site (substations → bays → equipment), the field devices that
serve it (Modbus, DNP3, IEC 61850) and every point of each device mapped to one CIM
Measurement. Emulator and gateway read the same file. Unknown keys are errors.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from firmware_sim.spec import FaultSpec, LoadGroup, SignalSpec

#: namespace of derived mRIDs; changing it changes every derived mRID, so never change it
MRID_NAMESPACE = uuid.UUID("6f2f1a0e-6a53-5c9e-9b1e-677269646761")

MeasurementKind = Literal["Analog", "Discrete", "Accumulator"]
MeasurementType = Literal[
    "ThreePhaseActivePower",
    "ThreePhaseReactivePower",
    "ThreePhasePower",
    "LineCurrent",
    "PhaseVoltage",
    "Voltage",
    "Angle",
    "Frequency",
    "TapPosition",
    "ActiveEnergy",
    "ReactiveEnergy",
    "SwitchPosition",
    # gridgate extensions (not in the CGMES list): protection pick-up and trip, 0/1 Discretes
    "ProtectionStart",
    "ProtectionOperate",
]
UnitSymbol = Literal["W", "VAr", "VA", "A", "V", "Hz", "deg", "Wh", "VArh", "none"]
UnitMultiplier = Literal["none", "k", "M"]
PhaseCode = Literal[
    "ABCN", "ABC", "ABN", "ACN", "BCN", "AB", "AC", "BC", "AN", "BN", "CN", "A", "B", "C", "N", "s1N", "s2N", "s12N", "s1", "s2", "s12", "none"
]
EquipmentType = Literal[
    "PowerTransformer", "Breaker", "Disconnector", "BusbarSection", "ACLineSegment", "EnergyConsumer", "LoadBreakSwitch", "Fuse"
]
DataType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
Order = Literal["big", "little"]

#: IEC 61850 double-point codes used for SwitchPosition values
SWITCH_POSITIONS = {0: "intermediate", 1: "open", 2: "closed", 3: "bad"}

#: which kind each measurementType belongs to (CGMES)
KIND_OF_TYPE: dict[str, str] = {
    "ThreePhaseActivePower": "Analog",
    "ThreePhaseReactivePower": "Analog",
    "ThreePhasePower": "Analog",
    "LineCurrent": "Analog",
    "PhaseVoltage": "Analog",
    "Voltage": "Analog",
    "Angle": "Analog",
    "Frequency": "Analog",
    "TapPosition": "Discrete",
    "ActiveEnergy": "Accumulator",
    "ReactiveEnergy": "Accumulator",
    "SwitchPosition": "Discrete",
    "ProtectionStart": "Discrete",
    "ProtectionOperate": "Discrete",
}
UNITS_OF_TYPE: dict[str, tuple[str, ...]] = {
    "ThreePhaseActivePower": ("W",),
    "ThreePhaseReactivePower": ("VAr",),
    "ThreePhasePower": ("VA",),
    "LineCurrent": ("A",),
    "PhaseVoltage": ("V",),
    "Voltage": ("V",),
    "Angle": ("deg",),
    "Frequency": ("Hz",),
    "TapPosition": ("none",),
    "ActiveEnergy": ("Wh",),
    "ReactiveEnergy": ("VArh",),
    "SwitchPosition": ("none",),
    "ProtectionStart": ("none",),
    "ProtectionOperate": ("none",),
}

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Name = Annotated[str, Field(pattern=_NAME, max_length=64, description="letters, digits, '_', '.', '-'; used in topics")]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(v: object) -> float:
    """`250ms`, `2s`, `5m`, `1h` or a number of seconds → seconds."""
    if isinstance(v, bool):
        raise ValueError("expected a duration such as 500ms, 2s, 5m")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = _DURATION.match(v)
        if m:
            return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    raise ValueError(f"expected a duration such as 500ms, 2s, 5m, got {v!r}")


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


class Bay(_Model):
    name: Name
    description: str = ""
    voltage_kv: float | None = Field(None, gt=0)
    equipment: list[Equipment] = Field(min_length=1)
    mrid: uuid.UUID | None = None


class Substation(_Model):
    name: Name
    description: str = ""
    bays: list[Bay] = Field(min_length=1)
    mrid: uuid.UUID | None = None


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


ModbusTable = Literal["coil", "discrete_input", "holding", "input"]


class ModbusPoint(PointBase):
    table: ModbusTable
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: DataType = "uint16"
    word_order: Order = Field("big", description="order of the 16-bit words of a 32-bit value")
    byte_order: Order = Field("big", description="order of the bytes inside each word")

    @model_validator(mode="after")
    def _bits(self) -> "ModbusPoint":
        bit_table = self.table in ("coil", "discrete_input")
        if bit_table and self.type != "bool":
            raise ValueError(f"a {self.table} point must have type bool, not {self.type}")
        if not bit_table and self.type == "bool":
            raise ValueError(f"type bool belongs to coil or discrete_input, not the {self.table} table")
        if self.address + self.width - 1 > 65535:
            raise ValueError("value runs past address 65535")
        return self

    @property
    def width(self) -> int:
        """registers (or bits) occupied"""
        return 2 if self.type in ("int32", "uint32", "float32") else 1


Dnp3Group = Literal["binary", "double_binary", "analog", "counter", "binary_output", "analog_output"]


class Dnp3Point(PointBase):
    group: Dnp3Group
    index: int = Field(ge=0, le=65535)
    event_class: Literal[0, 1, 2, 3] = Field(1, description="0: static only, no events")
    variation: int | None = Field(None, description="event variation override (default: with time)")


class MmsPoint(PointBase):
    reference: str = Field(
        description="IEC 61850 object reference of the data attribute, LD/LN.DO[.DA] e.g. F1PROT/MMXU1.TotW.mag.f"
    )
    fc: Literal["MX", "ST", "CO", "SP", "CF"] = "MX"

    @field_validator("reference")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_]{1,64}/[A-Za-z0-9_]+(\.[A-Za-z0-9_\[\]]+)+$", v):
            raise ValueError("expected an object reference LD/LN.DO[.DA], e.g. F1PROT/MMXU1.TotW.mag.f")
        return v


# ---------------------------------------------------------------- devices


class DeviceBase(_Model):
    name: Name
    kind: Literal["rtu", "ied", "meter"]
    description: str = ""
    host: str = Field("127.0.0.1", description="address the emulated device binds and the gateway connects to")
    port: int = Field(ge=1, le=65535)
    poll_interval: Duration = Field(1.0, description="seconds (or 500ms, 2s, ...)")
    timeout: Duration = 1.0
    enabled: bool = True
    groups: list[LoadGroup] = Field(default_factory=list, description="load groups for `derived` signals")

    #: the key of a point that names its protocol address (for error paths)
    address_key: ClassVar[str] = "address"

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


class ModbusOptions(_Model):
    max_registers: int = Field(125, ge=1, le=125, description="largest block read (FC3/FC4)")
    max_bits: int = Field(2000, ge=1, le=2000, description="largest block read (FC1/FC2)")
    max_gap: int = Field(8, ge=0, description="unused addresses a block read may span to merge neighbours")
    tables: dict[ModbusTable, int] = Field(
        default_factory=dict, description="size of each table in the emulated device (default: just past the last point)"
    )


class ModbusDevice(DeviceBase):
    protocol: Literal["modbus"]
    unit_id: int = Field(1, ge=0, le=255)
    modbus: ModbusOptions = Field(default_factory=ModbusOptions)
    points: list[ModbusPoint] = Field(min_length=1)

    def point_addresses(self, p: ModbusPoint) -> list[tuple]:  # type: ignore[override]
        return [(p.table, "address", a) for a in range(p.address, p.address + p.width)]

    @model_validator(mode="after")
    def _inside_tables(self) -> "ModbusDevice":
        for table, size in self.modbus.tables.items():
            for p in self.points:
                if p.table == table and p.address + p.width > size:
                    raise ValueError(f"@modbus.tables.{table}: point {p.name!r} lies beyond the table size {size}; enlarge it")
        return self


class Dnp3Options(_Model):
    master_address: int = Field(1, ge=0, le=65519)
    outstation_address: int = Field(10, ge=0, le=65519)
    unsolicited: bool = True
    integrity_interval: Duration = 600.0
    event_poll_interval: Duration = 5.0
    event_buffer: dict[Literal["class1", "class2", "class3"], int] = Field(
        default_factory=lambda: {"class1": 500, "class2": 500, "class3": 500}
    )


class Dnp3Device(DeviceBase):
    protocol: Literal["dnp3"]
    dnp3: Dnp3Options = Field(default_factory=Dnp3Options)
    points: list[Dnp3Point] = Field(min_length=1)

    address_key: ClassVar[str] = "index"

    def point_addresses(self, p: Dnp3Point) -> list[tuple]:  # type: ignore[override]
        return [(p.group, "index", p.index)]


class Iec61850Options(_Model):
    ied_name: Name | None = Field(None, description="IED name (prefix of the logical devices); default: device name")
    scl: str | None = Field(None, description="path of a libiec61850 .cfg/.cid model to serve instead of the generated one")
    reports: bool = True
    buffered: bool = True


class Iec61850Device(DeviceBase):
    protocol: Literal["iec61850"]
    iec61850: Iec61850Options = Field(default_factory=Iec61850Options)
    points: list[MmsPoint] = Field(min_length=1)

    address_key: ClassVar[str] = "reference"

    def point_addresses(self, p: MmsPoint) -> list[tuple]:  # type: ignore[override]
        return [(p.reference,)]


Device = Annotated[Union[ModbusDevice, Dnp3Device, Iec61850Device], Field(discriminator="protocol")]


# ---------------------------------------------------------------- gateway and site


class NorthboundTls(_Model):
    ca_file: Path | None = Field(None, description="CA that signed the broker's certificate (default: system store)")
    cert_file: Path | None = Field(None, description="client certificate for mutual TLS")
    key_file: Path | None = Field(None, description="client private key for mutual TLS")
    server_hostname: str | None = Field(None, description="name to verify the broker certificate against")


class SpoolOptions(_Model):
    """Durable store-and-forward between normaliser and publisher (SQLite, WAL)."""

    path: Path
    max_bytes: int = Field(256 << 20, ge=4096, description="size bound; analog values are dropped first")
    max_age: Duration | None = Field(None, description="values older than this are dropped (counted)")
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    drain_rate: float | None = Field(None, gt=0, description="values/s cap while a backlog drains after an outage")


class SparkplugOptions(_Model):
    group: str = Field(pattern=r"^[^/+#]+$", description="Sparkplug group id")
    edge: str | None = Field(None, pattern=r"^[^/+#]+$", description="edge node id (default: the gateway id)")


class NorthboundOptions(_Model):
    topic_prefix: str = Field("gridgate/v1", pattern=r"^[^#+]+$")
    url: str | None = Field(None, pattern=r"^mqtts?://", description="broker URL; `--broker` overrides it")
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password (never in the file)")
    require_tls: bool = Field(False, description="refuse to connect without TLS")
    tls: NorthboundTls | None = None
    queue_size: int = Field(10000, ge=10, description="values held in memory while the broker is unreachable")
    spool: SpoolOptions | None = Field(None, description="durable spool instead of the in-memory queue")
    integrity_interval: Duration = Field(60.0, description="every value is republished at least this often")
    analog_qos: Literal[0, 1] = 0
    analog_expiry: Duration | None = Field(None, description="MQTT 5 message expiry of analog values")
    payload: Literal["full", "compact"] = Field(
        "full",
        description="compact: values carry only the measurement's mRID (the description is in the retained catalog); "
        "about a third of the bytes, for WAN and radio links",
    )
    encoding: Literal["cim", "sparkplug", "both"] = "cim"
    sparkplug: SparkplugOptions | None = None
    commands: bool = Field(False, description="subscribe to .../cmd/{mRID} (points still need command.enabled)")

    @model_validator(mode="after")
    def _consistent(self) -> "NorthboundOptions":
        if self.encoding != "cim" and self.sparkplug is None:
            raise ValueError(f"@sparkplug: encoding {self.encoding!r} needs sparkplug: {{group: ...}}")
        if self.url and (self.require_tls or self.tls) and not self.url.startswith("mqtts://"):
            raise ValueError("@url: TLS is required or configured; use an mqtts:// URL (e.g. mqtts://broker:8883)")
        return self


class GatewayOptions(_Model):
    id: Name = "gw1"
    northbound: NorthboundOptions = Field(default_factory=NorthboundOptions)


class Site(_Model):
    name: Name
    description: str = ""
    operator: str = Field("", description="the network operator (DNO) running the site")
    mrid: uuid.UUID | None = None


class Config(_Model):
    """The whole site file."""

    site: Site
    gateway: GatewayOptions = Field(default_factory=GatewayOptions)
    substations: list[Substation] = Field(min_length=1)
    devices: list[Device] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> "Config":
        paths = self.equipment_paths()
        errors: list[str] = []
        _unique([s.name for s in self.substations], "substations", errors)
        for si, s in enumerate(self.substations):
            _unique([b.name for b in s.bays], f"substations[{si}].bays", errors)
            for bi, b in enumerate(s.bays):
                _unique([e.name for e in b.equipment], f"substations[{si}].bays[{bi}].equipment", errors)
        _unique([d.name for d in self.devices], "devices", errors)
        endpoints: dict[tuple[str, int], str] = {}
        mrids: dict[uuid.UUID, str] = {}
        topics: dict[tuple, str] = {}
        for di, d in enumerate(self.devices):
            ep = (d.host, d.port)
            if ep in endpoints and d.enabled:
                errors.append(f"@devices[{di}].port: {d.host}:{d.port} is already used by device {endpoints[ep]!r}")
            endpoints[ep] = d.name
            names = [p.name for p in d.points]
            _unique(names, f"devices[{di}].points", errors)
            for pi, p in enumerate(d.points):
                here = f"@devices[{di}].points[{pi}]"
                m = p.measurement
                if m.equipment not in paths:
                    errors.append(
                        f"{here}.measurement.equipment: {m.equipment!r} is not a substation/bay/equipment of this site"
                        f" (e.g. {next(iter(paths))!r})"
                    )
                    continue
                mrid = self.measurement_mrid(p)
                if mrid in mrids:
                    errors.append(f"{here}.measurement.mrid: duplicate mRID {mrid} (also {mrids[mrid]})")
                mrids[mrid] = f"devices[{di}].points[{pi}] ({d.name}/{p.name})"
                tk = (m.equipment, m.type, m.phases)
                if tk in topics:
                    errors.append(
                        f"{here}.measurement: {m.equipment} already has a {m.type} measurement with phases {m.phases}"
                        f" ({topics[tk]}); set different phases or equipment"
                    )
                topics[tk] = f"{d.name}/{p.name}"
                if p.signal is not None and p.signal.kind == "derived" and p.signal.group not in {g.name for g in d.groups}:
                    errors.append(f"{here}.signal.group: no load group {p.signal.group!r} in devices[{di}].groups")
                if p.signal is not None and p.signal.kind == "counter" and p.signal.source not in names:
                    errors.append(f"{here}.signal.source: no point {p.signal.source!r} on device {d.name}")
        if errors:
            raise ValueError("\n".join(errors))
        return self

    def equipment_paths(self) -> dict[str, tuple[Substation, Bay, Equipment]]:
        return {
            f"{s.name}/{b.name}/{e.name}": (s, b, e) for s in self.substations for b in s.bays for e in b.equipment
        }

    def measurement_mrid(self, p: PointBase) -> uuid.UUID:
        m = p.measurement
        if m.mrid is not None:
            return m.mrid
        return uuid.uuid5(MRID_NAMESPACE, f"{self.site.name}/{m.equipment}/{m.name or p.name}")

    def equipment_mrid(self, path: str, paths: dict[str, tuple[Substation, Bay, Equipment]] | None = None) -> uuid.UUID:
        """``paths``: :meth:`equipment_paths` computed once by a caller that asks for many (keeps start-up linear)."""
        _, _, e = (paths or self.equipment_paths())[path]
        return e.mrid or uuid.uuid5(MRID_NAMESPACE, f"{self.site.name}/{path}")


def _unique(names: list[str], where: str, errors: list[str]) -> None:
    first: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in first:
            errors.append(f"@{where}[{i}].name: {n!r} is used twice (also [{first[n]}]); names must be unique")
        else:
            first[n] = i


PointBase.model_rebuild()
ModbusPoint.model_rebuild()
Dnp3Point.model_rebuild()
MmsPoint.model_rebuild()
