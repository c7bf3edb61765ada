"""The published JSON as pydantic models: ``gridgate schema`` and subscribers validate against them
(re-exported by gateway/cim.py, which builds the same JSON without them)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.config import Config
from gateway.protocols import NAMES
from gateway.site.model import (
    KIND_OF_TYPE,
    MeasurementKind,
    MeasurementType,
    PhaseCode,
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


def json_schemas() -> dict[str, dict]:
    """The JSON Schemas ``gridgate schema`` prints."""
    return {
        "config": Config.model_json_schema(),
        "measurement": Measurement.model_json_schema(),
        "value": MeasurementValue.model_json_schema(),
        "status": Status.model_json_schema(),
        "heartbeat": Heartbeat.model_json_schema(),
    }
