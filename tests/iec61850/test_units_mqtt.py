"""Units: for every analogue of a site IED, the MMS value × 10^units.multiplier (in units.SIUnit) equals
the CIM value × 10^unitMultiplier (in unitSymbol) the gateway publishes on MQTT (real Mosquitto)."""

from __future__ import annotations

import os

from gateway.app import Gateway, GatewayOptions
from gateway.config import Config, load_config
from tests.iec61850.browse import Browser
from tests.iec61850.support import ROOT, IedProcess
from tests.support.mosquitto import free_port
from tests.support.mqtt import Collector

SI = {"W": 38, "VAr": 63, "VA": 61, "A": 5, "V": 29, "Hz": 33, "Wh": 72, "VArh": 73}
EXP = {"none": 0, "k": 3, "M": 6}


async def test_mms_value_times_multiplier_is_the_cim_value(mosquitto):
    base = load_config(os.path.join(ROOT, "configs", "primary-substation.yaml")).model_dump()
    dev = next(d for d in base["devices"] if d["protocol"] == "iec61850")
    dev["port"] = free_port()
    base["devices"] = [dev]
    cfg = Config.model_validate(base)
    d = cfg.devices[0]
    gw_id = cfg.gateway.id
    analogues = [p for p in d.points if p.measurement.kind in ("Analog", "Accumulator")]
    assert len(analogues) >= 8
    with IedProcess(d) as ied, Browser("127.0.0.1", d.port) as b:
        async with Collector(mosquitto.port, [f"gridgate/v1/{gw_id}/meas/#"]) as sub:
            async with Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=1.0)) as gw:
                await sub.wait_for(lambda: gw.sources[0].connected, 15, "IED association")
                checked = 0
                for i, p in enumerate(analogues):
                    value = 1000.0 + 37 * i if p.measurement.kind == "Analog" else 2_660_000 + i
                    ied.update(p.name, value, 0)
                    m = await sub.wait_for(
                        lambda: next((x for x in (r.json for r in sub.messages) if isinstance(x, dict) and x.get("provenance", {}).get("address") == p.reference
                                      and x.get("value") == value), None), 15, f"{p.name} on MQTT")
                    do = p.reference.rsplit(".", 2)[0] if p.reference.endswith(".f") else p.reference.rsplit(".", 1)[0]
                    if p.reference.endswith(".cVal.mag.f"):
                        do = p.reference[: -len(".cVal.mag.f")]
                    served = b.read(p.reference, "MX" if p.fc == "MX" else "ST")
                    mult = b.read(f"{do}.units.multiplier", "CF")
                    assert b.read(f"{do}.units.SIUnit", "CF") == SI[p.measurement.unit]
                    if p.measurement.kind == "Accumulator":
                        served *= b.read(f"{do}.pulsQty", "CF")  # actVal × pulsQty
                    cim = m["value"] * 10 ** EXP[p.measurement.multiplier]
                    assert abs(served * 10**mult - cim) <= 1e-6 * abs(cim), (p.name, served, mult, m["value"])
                    checked += 1
                assert checked == len(analogues)
