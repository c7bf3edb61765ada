"""CIM-shaped measurement payloads (IEC 61970-301 Measurement / MeasurementValue).

The pydantic models define and document the published JSON (``gridgate schema``) and let
subscribers validate it; the hot path builds the same JSON from plain dicts with the
static part of each measurement computed once (:class:`CatalogEntry`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway import encoding as fast
from gateway.config import Config
from gateway.encoding import QUALITY_TEXT
from gateway.protocols import NAMES
from gateway.site.model import (
    KIND_OF_TYPE,
    SWITCH_POSITIONS,
    DeviceBase,
    MeasurementKind,
    MeasurementType,
    PhaseCode,
    PointBase,
    UnitMultiplier,
    UnitSymbol,
    cim_measurement_type,
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PowerSystemResourceRef(_Out):
    mRID: uuid.UUID
    name: str
    type: str = Field(description="CIM class: PowerTransformer, Breaker, ...")
    substation: str
    bay: str


def _cim_types_schema(schema: dict) -> None:
    """``cimMeasurementType`` in the JSON Schema: one of CIM's names (never null when present)."""
    schema.pop("anyOf", None)
    schema.pop("default", None)
    schema.update(type="string", enum=sorted({cim_measurement_type(t) for t in KIND_OF_TYPE}))


class Measurement(_Out):
    """Published retained on ``.../catalog/{mRID}``; embedded in every value."""

    mRID: uuid.UUID
    name: str
    kind: MeasurementKind
    measurementType: MeasurementType = Field(description="the site file's name; also the topic level (v1: `Voltage` kept)")
    cimMeasurementType: str | None = Field(
        None, description="CIM's name (IEC 61970-452): as measurementType, but `LineToLineVoltage` for gridgate's `Voltage`"
        " and gridgate's own extensions prefixed `x-gridgate:`; equals Measurement.measurementType of `gridgate cim export`."
        " Always published; optional only for payloads of gridgate versions before it",
        json_schema_extra=_cim_types_schema,
    )
    unitSymbol: UnitSymbol
    unitMultiplier: UnitMultiplier
    phases: PhaseCode
    powerSystemResource: PowerSystemResourceRef
    topic: str = Field(description="where this measurement's values are published")


class Quality(_Out):
    """CIM Quality61850 (only the detail flags that are true are present)."""

    validity: Literal["GOOD", "QUESTIONABLE", "INVALID"]
    source: Literal["PROCESS", "SUBSTITUTED", "DEFAULTED"]
    overFlow: bool | None = None
    outOfRange: bool | None = None
    badReference: bool | None = None
    oscillatory: bool | None = None
    failure: bool | None = None
    oldData: bool | None = None
    inconsistent: bool | None = None
    inaccurate: bool | None = None
    test: bool | None = None
    operatorBlocked: bool | None = None
    suspect: bool | None = None


#: the registered protocols, as the JSON Schema's enum of ``source.protocol``
ProtocolName = Literal[NAMES]  # type: ignore[valid-type]


class Provenance(_Out):
    device: str
    protocol: ProtocolName  # type: ignore[valid-type]
    address: str


class MeasurementRef(_Out):
    """The ``compact`` payload's reference: the full Measurement is on ``.../catalog/{mRID}``."""

    mRID: uuid.UUID


class MeasurementValue(_Out):
    """An AnalogValue, DiscreteValue or AccumulatorValue as published on ``.../meas/...``."""

    # CIM: DiscreteValue.value and AccumulatorValue.value are integers (said where the full measurement is embedded)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [{
        "if": {"properties": {"measurement": {"required": ["kind"], "properties": {"kind": {"enum": ["Discrete", "Accumulator"]}}}}},
        "then": {"properties": {"value": {"type": ["integer", "null"]}}},
    }]})

    mRID: uuid.UUID = Field(description="the MeasurementValue's own mRID (stable per measurement)")
    measurement: Measurement | MeasurementRef = Field(
        description="the Measurement (payload: full) or only its mRID (payload: compact)"
    )
    value: float | int | None = Field(description="engineering value in unitMultiplier·unitSymbol; null if never read")
    valueAlias: str | None = Field(None, description="SwitchPosition: intermediate/open/closed/bad")
    timeStamp: str = Field(description="source time, ISO 8601 UTC with milliseconds")
    quality: Quality
    seq: int = Field(ge=1, description="per-gateway sequence number of publications, strictly increasing")
    provenance: Provenance


class Status(_Out):
    """Retained on ``.../status``: birth (online), death (offline, also the MQTT will)."""

    state: Literal["online", "offline"]
    gateway: str
    reason: str | None = None
    since: str | None = None
    version: str | None = Field(None, description="gridgate version (online)")
    timeStamp: str | None = Field(None, description="when the gateway wrote this status; absent in the last will "
                                  "(published by the broker at the death: see the retained heartbeat topic)")
    connectedAt: str | None = Field(None, description="when the current MQTT session connected")
    devices: dict[str, dict] | None = None
    stats: dict[str, int | float | dict[str, int | float | str]] | None = Field(
        None, description="counters; droppedBy: dropped values by reason; spool: state (ok/unwritable), writeFailures, "
        "values (the spool depth), bytes, error; oldestQueuedAge: seconds the oldest waiting value has waited; "
        "publishLatency (reading received → written/PUBACK) and eventLoopLag: histograms in seconds, "
        "{count, sum, <upper bound>: cumulative count, ..., +Inf}"
    )
    commands: bool | None = None  # the gateway subscribes to cmd/{mRID} (config and network profile allow it)


class Heartbeat(_Out):
    """``.../heartbeat`` (retained, QoS 1): when the gateway was last heard, for outage times after its death."""

    gateway: str
    timeStamp: str = Field(description="when this heartbeat was written (every status interval)")
    connectedAt: str = Field(description="when the current MQTT session connected")
    interval: float = Field(description="seconds between heartbeats")


def iso_ms(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(slots=True)
class CatalogEntry:
    """Everything static about one point: its measurement, topic and pre-encoded JSON parts."""

    key: str
    device: str
    protocol: str
    kind: str  # Analog | Discrete | Accumulator
    measurement_type: str
    deadband: float
    topic: str
    value_mrid: str
    is_switch: bool
    analog: bool  # kind == "Analog"
    outbox_kind: str  # analog / discrete / accumulator: what a spool bound drops first
    json_prefix: str  # '{"mRID":...,"measurement":{...},"value":' — reused for every value
    #: the Measurement's JSON when the prefix does not hold it (compact payloads); else "" (no second copy)
    catalog_json: str = ""
    #: the last address seen and the payload's end for it, ``,"provenance":{...}}`` (a point's address does not change)
    provenance: tuple[str, str] = ("", "")

    @property
    def measurement_json(self) -> str:
        """The Measurement as published retained on ``.../catalog/{mRID}``.

        Only JSON text is kept per point (50,000 points: dicts cost ~1 KB each); in full
        payloads it is the middle of the value prefix.
        """
        return self.catalog_json or self.json_prefix[_MEAS_AT:-_VALUE_TAIL]

    @property
    def mrid(self) -> str:
        """The Measurement's mRID."""
        return self.measurement_json[9:45]  # '{"mRID":"' + 36-character UUID

    @property
    def measurement(self) -> dict:
        """The Measurement as a dict (decoded on demand: start-up and tools, never per value)."""
        return json.loads(self.measurement_json)

    def payload(self, value: float | int | None, flags: int, timestamp: float, seq: int, address: str) -> bytes:
        """The value's JSON: a template per point (``json_prefix`` … provenance) with only value, timestamp,
        quality (cached by flag integer) and seq spliced in."""
        return self.payload_at(value, flags, fast.iso_ms(timestamp), seq, address)

    def payload_at(self, value: float | int | None, flags: int, ts_text: str, seq: int, address: str) -> bytes:
        """:meth:`payload` with the timestamp already formatted (``encoding.iso_ms``): the readings of one
        block share it, so the normaliser formats it once per block."""
        if type(value) is float and -1e15 < value < 1e15:  # the common case; NaN and ±inf fail the comparison
            if self.analog:
                if 1e-4 <= abs(value) < 4294967296.0:  # repr(round(value, 6)), faster: see _fixed6 (inlined here)
                    num = f"{value:.6f}".rstrip("0")
                    if num[-1] == ".":
                        num += "0"
                else:
                    num = repr(round(value, 6))
            else:
                value = round(value)  # DiscreteValue/AccumulatorValue are integers, whatever the protocol carried
                num = str(value)
        else:
            if not self.analog and isinstance(value, float) and value == value and abs(value) != float("inf"):
                value = round(value)  # DiscreteValue/AccumulatorValue are integers, whatever the protocol carried
            num = _num(value)
        prov = self.provenance
        if prov[0] != address or not prov[1]:
            prov = self.provenance = (address, ',"provenance":' + fast.provenance_json(self.device, self.protocol, address) + "}")
        if self.is_switch and value is not None:
            num += f',"valueAlias":"{SWITCH_POSITIONS.get(int(value), "bad")}"'
        return (
            f'{self.json_prefix}{num},"timeStamp":"{ts_text}","quality":'
            f'{QUALITY_TEXT.get(flags) or fast.quality_json(flags)},"seq":{seq}{prov[1]}'
        ).encode()


_MEAS_AT = len('{"mRID":"') + 36 + len('","measurement":')
_VALUE_TAIL = len(',"value":')


def _fixed6(v: float) -> str:
    """``repr(round(v, 6))`` for 1e-4 <= |v| < 2**32, in a third of its time (1.1 → 0.4 µs here: it was the
    payload's largest single cost). Both round to 6 decimals the same way (``%.6f`` and ``round`` share
    CPython's correctly rounded dtoa); below 2**32 a double's spacing is under 1e-6, so no shorter decimal
    names the same double and the shortest repr is the 6-decimal text without its trailing zeros; from
    1e-4 up repr uses no exponent. tests/core/test_encoding.py compares both on millions of values."""
    s = f"{v:.6f}".rstrip("0")
    return s + "0" if s[-1] == "." else s


def _num(v: float | int | None) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if v != v or v in (float("inf"), float("-inf")):
        return "null"
    return repr(round(v, 6)) if abs(v) < 1e15 else repr(v)


def measurement_topic(prefix: str, gateway: str, equipment_path: str, mtype: str, phases: str) -> str:
    topic = f"{prefix}/{gateway}/meas/{equipment_path}/{mtype}"
    return topic if phases == "none" else f"{topic}/{phases}"


def build_catalog(cfg: Config) -> dict[str, CatalogEntry]:
    """One entry per point of every enabled device, keyed ``device/point``."""
    prefix = cfg.gateway.northbound.topic_prefix
    gw = cfg.gateway.id
    compact = cfg.gateway.northbound.payload == "compact"
    paths = cfg.equipment_paths()
    out: dict[str, CatalogEntry] = {}
    for d in cfg.devices:
        if not d.enabled:
            continue
        for p in d.points:
            key = f"{d.name}/{p.name}"
            out[key] = _entry(cfg, d, p, key, paths, prefix, gw, compact)
    return out


def _entry(cfg: Config, d: DeviceBase, p: PointBase, key: str, paths: dict, prefix: str, gw: str,
           compact: bool) -> CatalogEntry:
    m = p.measurement
    sub, bay, eq = paths[m.equipment]
    mrid = cfg.measurement_mrid(p)
    topic = measurement_topic(prefix, gw, m.equipment, m.type, m.phases)
    meas = {
        "mRID": str(mrid),
        "name": m.name or p.name,
        "kind": m.kind,
        "measurementType": m.type,
        "cimMeasurementType": cim_measurement_type(m.type),
        "unitSymbol": m.unit,
        "unitMultiplier": m.multiplier,
        "phases": m.phases,
        "powerSystemResource": {
            "mRID": str(cfg.equipment_mrid(m.equipment, paths)),
            "name": eq.name,
            "type": eq.type,
            "substation": sub.name,
            "bay": bay.name,
        },
        "topic": topic,
    }
    value_mrid = str(uuid.uuid5(mrid, "value"))
    meas_json = json.dumps(meas, separators=(",", ":"))
    embedded = '{"mRID":"' + meas["mRID"] + '"}' if compact else meas_json
    prefix_json = '{"mRID":"' + value_mrid + '","measurement":' + embedded + ',"value":'
    return CatalogEntry(
        key=key,
        device=d.name,
        protocol=d.protocol,  # type: ignore[attr-defined]
        kind=m.kind or "Analog",
        measurement_type=m.type,
        deadband=p.deadband,
        topic=topic,
        value_mrid=value_mrid,
        is_switch=m.type == "SwitchPosition",
        analog=(m.kind or "Analog") == "Analog",
        outbox_kind=(m.kind or "Analog").lower(),
        json_prefix=prefix_json,
        catalog_json=meas_json if compact else "",
    )


def json_schemas() -> dict[str, dict]:
    """The JSON Schemas ``gridgate schema`` prints."""
    return {
        "config": Config.model_json_schema(),
        "measurement": Measurement.model_json_schema(),
        "value": MeasurementValue.model_json_schema(),
        "status": Status.model_json_schema(),
        "heartbeat": Heartbeat.model_json_schema(),
    }
