"""A synthetic large site straight on MQTT (catalog, values, status, all retained), as a gateway
would publish it: for the 10,000-point browser test and bench/bench_hmi.py."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone

import gmqtt

GW = "big-gw"
PREFIX = "gridgate/v1"
TYPES = [("ThreePhaseActivePower", "W", "k", "ABC"), ("ThreePhaseReactivePower", "VAr", "k", "ABC"),
         ("LineCurrent", "A", "none", "A"), ("LineCurrent", "A", "none", "B"), ("LineCurrent", "A", "none", "C"),
         ("PhaseVoltage", "V", "none", "AN"), ("PhaseVoltage", "V", "none", "BN"), ("PhaseVoltage", "V", "none", "CN"),
         ("Frequency", "Hz", "none", None)]


def _entry(sub: str, bay: str, eq: str, eq_type: str, name: str, mtype: str, unit: str, mult: str, phases: str | None,
           kind: str = "Analog") -> dict:
    mrid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sub}/{bay}/{eq}/{name}"))
    topic = f"{PREFIX}/{GW}/meas/{sub}/{bay}/{eq}/{mtype}" + (f"/{phases}" if phases else "")
    return {"mRID": mrid, "name": name, "kind": kind, "measurementType": mtype, "unitSymbol": unit, "unitMultiplier": mult,
            "phases": phases or "none", "powerSystemResource": {"mRID": mrid, "name": eq, "type": eq_type, "substation": sub, "bay": bay},
            "topic": topic + ("" if name == mtype else f"#{name}")}


def catalog(points: int = 10_000) -> list[dict]:
    """One substation: two transformers, two incomers, a bus section and as many feeders as it takes."""
    sub = "BIG"
    out = []
    for t in ("T1", "T2"):
        out.append(_entry(sub, t, "TX", "PowerTransformer", "TAP", "TapPosition", "none", "none", None, "Discrete"))
        out.append(_entry(sub, t, "HVCB", "Breaker", "Pos", "SwitchPosition", "none", "none", None, "Discrete"))
    for i in ("INC1", "INC2"):
        out.append(_entry(sub, i, "CB", "Breaker", "Pos", "SwitchPosition", "none", "none", None, "Discrete"))
    out.append(_entry(sub, "BS", "CB", "Breaker", "Pos", "SwitchPosition", "none", "none", None, "Discrete"))
    out.append(_entry(sub, "BS", "BB1", "BusbarSection", "V", "Voltage", "V", "k", "AB"))
    out.append(_entry(sub, "BS", "BB2", "BusbarSection", "V", "Voltage", "V", "k", "AB"))
    f = 0
    while len(out) < points:
        f += 1
        bay = f"F{f:03d}"
        out.append(_entry(sub, bay, "CB", "Breaker", "Pos", "SwitchPosition", "none", "none", None, "Discrete"))
        for k in range(24):
            mtype, unit, mult, ph = TYPES[k % len(TYPES)]
            out.append(_entry(sub, bay, "FDR", "ACLineSegment", f"{mtype[:6]}{k}", mtype, unit, mult, ph))
    for e in out:  # one topic per measurement
        e["topic"] = e["topic"].replace("#", "/")
    return out[:points]


def value(e: dict, seq: int, v: float | int) -> dict:
    return {"mRID": str(uuid.uuid5(uuid.NAMESPACE_OID, e["mRID"])), "measurement": {"mRID": e["mRID"]}, "value": v,
            "timeStamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "quality": {"validity": "GOOD", "source": "PROCESS"}, "seq": seq}


async def publish_site(port: int, entries: list[dict]) -> float:
    """Publish status, catalog and one value per point, retained; returns the seconds it took."""
    c = gmqtt.Client(f"bigsite-{uuid.uuid4().hex[:6]}")
    await c.connect("127.0.0.1", port, version=gmqtt.constants.MQTTv311)
    t0 = time.monotonic()
    c.publish(f"{PREFIX}/{GW}/status", json.dumps({"state": "online", "gateway": GW, "devices": {"rtu": {"connected": True}},
                                                    "commands": False}), qos=1, retain=True)
    for i, e in enumerate(entries):
        c.publish(f"{PREFIX}/{GW}/catalog/{e['mRID']}", json.dumps(e), qos=0, retain=True)
        v = 2 if e["measurementType"] == "SwitchPosition" else 9 if e["measurementType"] == "TapPosition" else 100.0 + i % 50
        c.publish(e["topic"], json.dumps(value(e, i + 1, v)), qos=0, retain=True)
        if i % 500 == 0:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    await c.disconnect()
    return time.monotonic() - t0


def site_json(ws_url: str) -> dict:
    return {"wsUrl": ws_url, "prefix": PREFIX, "gateway": GW, "site": {"name": "BIG", "description": "synthetic 10,000-point site"},
            "commandsEnabled": False, "commands": {}, "substations": []}
