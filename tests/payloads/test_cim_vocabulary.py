"""CIM's own measurement vocabulary in the site file and on MQTT (issue 16, item 3).

`LineToLineVoltage` and the other IEC 61970-301/452 names are measurement types of their own;
gridgate's v1 `Voltage` keeps its topic and `measurementType`, and every Measurement carries
`cimMeasurementType`: CIM's name (`LineToLineVoltage`, `x-gridgate:` extensions), the same
string `gridgate cim export` writes, so a subscriber can match the payload to the model.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from devices.emulator import Emulator
from gateway.app import Gateway, GatewayOptions
from gateway.cim import build_catalog, json_schemas
from gateway.config import ConfigError, load_config
from tests.support.mosquitto import free_port
from tests.support.mqtt import Collector
from tests.support.sites import SITE

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"


def _point(name: str, address: int, mtype: str, value: float, kind: str = "float32", **meas) -> dict:
    return {"name": name, "table": "holding", "address": address, "type": kind,
            "measurement": {"equipment": "SUB/INC1/CB", "type": mtype, **meas}, "signal": {"kind": "constant", "value": value}}


POINTS = [
    _point("Vab", 0, "LineToLineVoltage", 11.05, multiplier="k", phases="AB"),
    _point("Vold", 2, "Voltage", 11.02, multiplier="k", phases="BC"),
    _point("PF", 4, "PowerFactor", 0.97),
    _point("Temp", 6, "Temperature", 41.5),
    _point("Ops", 8, "OperationCount", 1234, kind="uint32"),
    _point("Trip", 10, "ProtectionOperate", 0, kind="uint16"),
]


def _site(tmp_path: Path, points: list[dict]) -> Path:
    site = dict(SITE, devices=[{"name": "m1", "kind": "meter", "protocol": "modbus", "port": free_port(),
                                "poll_interval": "300ms", "points": points}])
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


def test_example_catalog_keeps_v1_names_and_adds_cims():
    cat = [e.measurement for e in build_catalog(load_config(EXAMPLE)).values()]
    pairs = {(m["measurementType"], m["cimMeasurementType"]) for m in cat}
    assert ("Voltage", "LineToLineVoltage") in pairs
    assert ("ProtectionStart", "x-gridgate:ProtectionStart") in pairs and ("ProtectionOperate", "x-gridgate:ProtectionOperate") in pairs
    assert ("AvcState", "x-gridgate:AvcState") in pairs and ("AvcBlocked", "x-gridgate:AvcBlocked") in pairs
    assert ("Automatic", "Automatic") in pairs  # the AVC's auto/manual switch: CIM's own name
    assert all(c == t for t, c in pairs if t not in ("Voltage", "ProtectionStart", "ProtectionOperate")
               and not t.startswith("Avc"))
    assert any(m["topic"].endswith("/KGM/BS/BB1/Voltage/AB") for m in cat)  # v1 topics unchanged
    schema = jsonschema.Draft202012Validator(json_schemas()["measurement"])
    assert all(not list(schema.iter_errors(m)) for m in cat)
    assert list(schema.iter_errors({**cat[0], "cimMeasurementType": "vendor:Thing"}))  # only CIM's names and gridgate's
    assert list(schema.iter_errors({**cat[0], "cimMeasurementType": "Voltage"}))  # v1's name is not CIM's
    assert list(schema.iter_errors({**cat[0], "cimMeasurementType": None}))
    old = {k: v for k, v in cat[0].items() if k != "cimMeasurementType"}
    assert not list(schema.iter_errors(old))  # a payload of a gridgate before the field still validates


def test_new_types_take_their_cim_units(tmp_path):
    cfg = load_config(_site(tmp_path, POINTS))
    units = {p.name: (p.measurement.kind, p.measurement.unit) for p in cfg.devices[0].points}
    assert units == {"Vab": ("Analog", "V"), "Vold": ("Analog", "V"), "PF": ("Analog", "none"), "Temp": ("Analog", "degC"),
                     "Ops": ("Accumulator", "none"), "Trip": ("Discrete", "none")}
    bad = [_point("PF", 0, "PowerFactor", 1.0, unit="V"), _point("T", 2, "Temperature", 1.0, kind="float32")]
    bad[1]["measurement"]["kind"] = "Discrete"
    with pytest.raises(ConfigError) as e:
        load_config(_site(tmp_path, bad))
    text = str(e.value)
    assert "devices[0].points[0].measurement" in text and "unit 'V' does not fit PowerFactor; allowed: none, cosPhi" in text
    assert "devices[0].points[1].measurement" in text and "measurementType Temperature is a Analog, not a Discrete" in text


async def test_cim_types_published_over_modbus_and_mqtt(tmp_path, mosquitto):
    cfg = load_config(_site(tmp_path, POINTS))
    catalog = build_catalog(cfg)
    want = {e.topic for e in catalog.values()}
    value_schema = jsonschema.Draft202012Validator(json_schemas()["value"])
    prefix = "gridgate/v1/gw-test/meas/SUB/INC1/CB"
    async with Emulator(cfg):
        async with Collector(mosquitto.port, ["gridgate/v1/gw-test/meas/#"]) as sub:
            async with Gateway(cfg, GatewayOptions(broker=mosquitto.url)):
                await sub.wait_for(lambda: want <= {m.topic for m in sub.messages}, 60, "a value of every point")
    last = {m.topic: m.json for m in sub.messages}
    assert want == {f"{prefix}/LineToLineVoltage/AB", f"{prefix}/Voltage/BC", f"{prefix}/PowerFactor", f"{prefix}/Temperature",
                    f"{prefix}/OperationCount", f"{prefix}/ProtectionOperate"}
    for topic, v in last.items():
        assert not list(value_schema.iter_errors(v)), topic
        assert v["quality"] == {"validity": "GOOD", "source": "PROCESS"}
    got = {t.rsplit("/CB/", 1)[1]: (v["measurement"]["measurementType"], v["measurement"]["cimMeasurementType"],
                                     v["measurement"]["unitSymbol"], v["value"]) for t, v in last.items()}
    assert got["LineToLineVoltage/AB"][:3] == ("LineToLineVoltage", "LineToLineVoltage", "V")
    assert got["LineToLineVoltage/AB"][3] == pytest.approx(11.05, abs=1e-4)
    assert got["Voltage/BC"][:3] == ("Voltage", "LineToLineVoltage", "V") and got["Voltage/BC"][3] == pytest.approx(11.02, abs=1e-4)
    assert got["PowerFactor"][:3] == ("PowerFactor", "PowerFactor", "none") and got["PowerFactor"][3] == pytest.approx(0.97, abs=1e-4)
    assert got["Temperature"][:3] == ("Temperature", "Temperature", "degC") and got["Temperature"][3] == pytest.approx(41.5)
    assert got["OperationCount"] == ("OperationCount", "OperationCount", "none", 1234)  # an AccumulatorValue: an integer
    assert got["ProtectionOperate"] == ("ProtectionOperate", "x-gridgate:ProtectionOperate", "none", 0)


def test_docs_table_schema_and_site_model_list_the_same_types():
    import re

    from gateway.site.model import CIM_TYPE_OF, KIND_OF_TYPE, UNITS_OF_TYPE

    doc = (Path(__file__).resolve().parents[2] / "docs" / "mqtt-topics.md").read_text()
    section = doc.split("## Measurement types", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, tuple[str, tuple[str, ...]]] = {}
    for row in re.findall(r"^\| (Analog|Discrete|Accumulator) \| (.+) \|$", section, re.M):
        pending: list[str] = []
        for name, units in re.findall(r"`(\w+)`|\(([^)]*)\)", row[1]):
            if name:
                pending.append(name)
            else:
                documented.update({n: (row[0], tuple(u.strip() for u in units.split(","))) for n in pending})
                pending = []
        assert not pending, f"{row[0]} row: {pending} without a unit"
    own = {t: (KIND_OF_TYPE[t], UNITS_OF_TYPE[t]) for t in KIND_OF_TYPE if t not in CIM_TYPE_OF}
    assert documented == own
    for t, cim in CIM_TYPE_OF.items():  # the v1 name and the extensions: explained below the table
        assert f"`{t}`" in section and f"`{cim}`" in section
    schema = json_schemas()["measurement"]
    props = schema["properties"]
    assert set(props["measurementType"]["enum"]) == set(KIND_OF_TYPE)
    assert set(props["unitSymbol"]["enum"]) == {u for us in UNITS_OF_TYPE.values() for u in us}
    assert "cimMeasurementType" in props  # added; the v1 fields below keep their names and stay required
    for field in ("mRID", "name", "kind", "measurementType", "unitSymbol", "unitMultiplier", "phases", "powerSystemResource", "topic"):
        assert field in schema["required"], field
