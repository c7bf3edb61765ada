"""Small site configs on free loopback ports for tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.config import Config, load_config
from tests.support.mosquitto import free_port

SITE = {
    "site": {"name": "TESTSITE"},
    "gateway": {"id": "gw-test", "northbound": {"integrity_interval": "30s"}},
    "substations": [
        {
            "name": "SUB",
            "bays": [
                {"name": "INC1", "equipment": [{"name": "CB", "type": "Breaker"}]},
                {"name": "F1", "equipment": [{"name": "CB", "type": "Breaker"}, {"name": "FDR", "type": "ACLineSegment"}]},
            ],
        }
    ],
}

#: Modbus points covering every data type and word/byte order, with constant signals
MODBUS_POINTS = [
    {"name": "P", "table": "holding", "address": 0, "type": "float32", "word_order": "little", "scale": 1000,
     "measurement": {"equipment": "SUB/INC1/CB", "type": "ThreePhaseActivePower", "multiplier": "k", "phases": "ABC"},
     "signal": {"kind": "constant", "value": 4321.5}},
    {"name": "Q", "table": "holding", "address": 2, "type": "float32", "byte_order": "little",
     "measurement": {"equipment": "SUB/INC1/CB", "type": "ThreePhaseReactivePower", "multiplier": "k", "phases": "ABC"},
     "signal": {"kind": "constant", "value": -812.25}},
    {"name": "Ia", "table": "holding", "address": 10, "type": "uint16", "scale": 0.1,
     "measurement": {"equipment": "SUB/INC1/CB", "type": "LineCurrent", "phases": "A"},
     "signal": {"kind": "constant", "value": 182.4}},
    {"name": "Vab", "table": "holding", "address": 20, "type": "uint32", "scale": 0.01, "word_order": "little", "byte_order": "little",
     "measurement": {"equipment": "SUB/INC1/CB", "type": "Voltage", "phases": "AB"},
     "signal": {"kind": "constant", "value": 11012.34}},
    {"name": "Ang", "table": "input", "address": 5, "type": "int32", "scale": 0.01,
     "measurement": {"equipment": "SUB/INC1/CB", "type": "Angle", "phases": "A"},
     "signal": {"kind": "constant", "value": -17.5}},
    {"name": "Hz", "table": "input", "address": 0, "type": "int16", "scale": 0.001, "offset": 50,
     "measurement": {"equipment": "SUB/INC1/CB", "type": "Frequency"},
     "signal": {"kind": "constant", "value": 49.987}},
    {"name": "CB", "table": "discrete_input", "address": 3, "type": "bool", "value_map": {0: 1, 1: 2},
     "measurement": {"equipment": "SUB/INC1/CB", "type": "SwitchPosition"},
     "signal": {"kind": "discrete", "initial": 2}},
]


def modbus_site(tmp_path: Path, poll: str = "300ms", timeout: str = "250ms") -> tuple[Config, Path]:
    site = dict(SITE)
    site["devices"] = [
        {"name": "meter1", "kind": "meter", "protocol": "modbus", "port": free_port(),
         "poll_interval": poll, "timeout": timeout, "points": MODBUS_POINTS}
    ]
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return load_config(path), path
