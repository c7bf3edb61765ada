"""CIM-shaped measurement payloads (IEC 61970-301 Measurement / MeasurementValue).

The pydantic models in gateway/cim_schema.py define and document the published JSON (``gridgate
schema``) and let subscribers validate it; the hot path builds the same JSON from plain dicts with
the static part of each measurement computed once (:class:`CatalogEntry`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gateway import encoding as fast
from gateway.encoding import QUALITY_TEXT
from gateway.site.cimtypes import SWITCH_POSITIONS, cim_measurement_type, uuid5_text, uuid_bytes

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.site.model import DeviceBase, PointBase

#: the payload models (pydantic) live in gateway/cim_schema.py and load when first named here: a
#: running gateway builds its JSON from the catalog and never imports pydantic for it
_SCHEMA = ("PowerSystemResourceRef", "Measurement", "Quality", "ProtocolName", "Provenance", "MeasurementRef",
           "MeasurementValue", "Status", "Heartbeat", "json_schemas")


def __getattr__(name: str) -> Any:
    if name in _SCHEMA:
        from gateway import cim_schema

        return getattr(cim_schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    resources: dict[str, tuple[str, str]] = {}  # per equipment, not per point: (mRID, powerSystemResource JSON)
    for d in cfg.devices:
        if not d.enabled:
            continue
        for p in d.points:
            key = f"{d.name}/{p.name}"
            out[key] = _entry(cfg, d, p, key, paths, prefix, gw, compact, resources)
    return out


#: what ``json.dumps`` writes for a str (its default ``ensure_ascii``); other values go through json.dumps
_jstr = json.encoder.encode_basestring_ascii


def _j(v: object) -> str:
    return _jstr(v) if type(v) is str else json.dumps(v)


def _resource(cfg: Config, path: str, paths: dict) -> tuple[str, str]:
    sub, bay, eq = paths[path]
    mrid = str(cfg.equipment_mrid(path, paths))
    return mrid, (f'{{"mRID":{_j(mrid)},"name":{_j(eq.name)},"type":{_j(eq.type)},"substation":{_j(sub.name)},'
                  f'"bay":{_j(bay.name)}}}')


def _entry(cfg: Config, d: DeviceBase, p: PointBase, key: str, paths: dict, prefix: str, gw: str,
           compact: bool, resources: dict[str, tuple[str, str]]) -> CatalogEntry:
    m = p.measurement
    mrid = cfg.measurement_mrid_text(p)
    resource = resources.get(m.equipment)
    if resource is None:
        resource = resources[m.equipment] = _resource(cfg, m.equipment, paths)
    topic = measurement_topic(prefix, gw, m.equipment, m.type, m.phases)
    # the text json.dumps(separators=(",", ":")) writes for {"mRID", "name", "kind", "measurementType",
    # "cimMeasurementType", "unitSymbol", "unitMultiplier", "phases", "powerSystemResource": {"mRID", "name",
    # "type", "substation", "bay"}, "topic"} (gateway.cim_schema's Measurement), written from its parts with json's own string
    # encoder, the resource once per equipment: 10,000 points 0.13 → 0.08 CPU-s (tests/core/test_catalog_json.py
    # compares both)
    meas_json = (f'{{"mRID":{_j(mrid)},"name":{_j(m.name or p.name)},"kind":{_j(m.kind)},"measurementType":{_j(m.type)},'
                 f'"cimMeasurementType":{_j(cim_measurement_type(m.type))},"unitSymbol":{_j(m.unit)},'
                 f'"unitMultiplier":{_j(m.multiplier)},"phases":{_j(m.phases)},"powerSystemResource":{resource[1]},'
                 f'"topic":{_j(topic)}}}')
    value_mrid = uuid5_text(uuid_bytes(mrid), "value")
    embedded = '{"mRID":"' + mrid + '"}' if compact else meas_json
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
