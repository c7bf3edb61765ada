"""Every message of a run of the example site validates against the published JSON Schemas
(`gridgate schema`), and DiscreteValue/AccumulatorValue values are integers from every protocol."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from devices.emulator import Emulator
from devices.scenario.ports import with_free_ports
from gateway.app import Gateway, GatewayOptions
from gateway.cim import build_catalog, json_schemas
from gateway.config import Config, load_config
from tests.northbound import pbdecode
from tests.support.mqtt import Collector

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"


def _site(tmp_path: Path, **northbound) -> Config:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["gateway"]["northbound"].update(northbound)
    p = tmp_path / "site.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return with_free_ports(load_config(p))


async def test_every_topic_of_a_run_validates_and_counters_are_integers(tmp_path, mosquitto):
    cfg = _site(tmp_path, encoding="both", sparkplug={"group": "KGM"})
    schemas = {k: jsonschema.Draft202012Validator(v) for k, v in json_schemas().items()}
    catalog = build_catalog(cfg)
    want = {e.topic for e in catalog.values()}
    prefix = f"gridgate/v1/{cfg.gateway.id}"
    async with Emulator(cfg):
        async with Collector(mosquitto.port, [f"{prefix}/#", "spBv1.0/#"]) as sub:
            async with Gateway(cfg, GatewayOptions(broker=mosquitto.url)):
                await sub.wait_for(lambda: want <= {m.topic for m in sub.messages} and sub.on("/DBIRTH/"), 60,
                                   "a value of every measurement and the Sparkplug births")
                await sub.wait_for(lambda: _sparkplug_values(sub, "T1/TX/ActiveEnergy"), 30, "a Sparkplug accumulator value")
    kinds = {"meas": 0, "catalog": 0, "status": 0, "heartbeat": 0}
    for m in sub.messages:
        if not m.topic.startswith(prefix):
            continue
        part = m.topic[len(prefix) + 1:].split("/", 1)[0]
        which = {"meas": "value", "catalog": "measurement", "status": "status", "heartbeat": "heartbeat"}[part]
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in schemas[which].iter_errors(m.json)]
        assert not errors, f"{m.topic} does not validate against `gridgate schema {which}`: {errors}"
        kinds[part] += 1
    assert kinds["catalog"] == 113 and kinds["meas"] >= 113 and kinds["status"] >= 1 and kinds["heartbeat"] >= 1
    by_topic = {m.topic: m for m in sub.messages}
    for e in catalog.values():
        v = by_topic[e.topic].json["value"]
        if e.kind == "Analog":
            assert isinstance(v, (int, float)), e.topic
        else:  # DiscreteValue / AccumulatorValue: integers in the JSON text, whatever the protocol
            assert isinstance(v, int) and not isinstance(v, bool), f"{e.topic} ({e.protocol}) published {v!r}"
    protocols = {(e.protocol, e.kind) for e in catalog.values()}
    assert {("dnp3", "Accumulator"), ("iec61850", "Accumulator"), ("modbus", "Accumulator"), ("dnp3", "Discrete"),
            ("iec61850", "Discrete"), ("modbus", "Discrete")} <= protocols
    tap = by_topic[f"{prefix}/meas/KGM/T1/TX/TapPosition"].payload
    assert b'"value":9,' in tap  # DNP3 analog carrying a tap position: 9, not 9.0
    # Sparkplug: accumulators are Int64 metrics (datatype 4), discretes Int32 (3), analogs Double (10)
    births = {mm["name"]: mm for m in sub.on("spBv1.0/KGM/DBIRTH/") for mm in pbdecode.payload(m.payload)["metrics"]}
    assert births["T1/TX/ActiveEnergy"]["datatype"] == 4 and births["T1/TX/TapPosition"]["datatype"] == 3
    assert births["T1/TX/ThreePhaseActivePower/ABC"]["datatype"] == 10
    values = _sparkplug_values(sub, "T1/TX/ActiveEnergy")
    assert all(isinstance(v, int) and v >= 912345 for v in values)


def _sparkplug_values(sub, name: str) -> list:
    """Values of one Sparkplug metric, from births (by name) and data messages (by the birth's alias)."""
    out, alias = [], None
    for m in sub.messages:
        if "/DBIRTH/" in m.topic or "/DDATA/" in m.topic:
            for mm in pbdecode.payload(m.payload)["metrics"]:
                if mm.get("name") == name:
                    alias = mm.get("alias")
                if (mm.get("name") == name or (alias is not None and mm.get("alias") == alias)) and "value" in mm:
                    out.append(mm["value"])
    return out


def test_value_schema_says_discrete_and_accumulator_values_are_integers():
    v = jsonschema.Draft202012Validator(json_schemas()["value"])
    from gateway.cim import Measurement  # a full measurement from the example, as published

    cfg = load_config(EXAMPLE)
    e = next(e for e in build_catalog(cfg).values() if e.kind == "Accumulator")
    Measurement.model_validate(e.measurement)
    base = {"mRID": e.value_mrid, "measurement": e.measurement, "timeStamp": "2026-12-06T04:00:00.000Z",
            "quality": {"validity": "GOOD", "source": "PROCESS"}, "seq": 1,
            "provenance": {"device": e.device, "protocol": e.protocol, "address": "counter 0"}}
    assert not list(v.iter_errors({**base, "value": 912345}))
    assert list(v.iter_errors({**base, "value": 912345.5}))  # not an integer (JSON Schema counts 912345.0 as one:
    # that the JSON text has no ".0" is checked on the published payloads above)
    assert not list(v.iter_errors({**base, "value": None}))
    analog = next(x for x in build_catalog(cfg).values() if x.kind == "Analog")
    assert not list(v.iter_errors({**base, "measurement": analog.measurement, "value": 1.5}))
