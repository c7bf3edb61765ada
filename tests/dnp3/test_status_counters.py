"""The DNP3 driver's protocol counters reach the status topic whole (they once had no caller)."""

from __future__ import annotations

import json

from devices.dnp3.outstation import Dnp3Outstation
from gateway.app import Gateway, GatewayOptions, status_topic
from gateway.config import Config
from tests.dnp3.test_e2e_mqtt import rtu_only
from tests.support.mqtt import Collector


async def test_unmapped_link_and_iin_counters_on_the_status_topic(mosquitto) -> None:
    probe = rtu_only(1)
    rtu = probe.devices[0]
    os_ = Dnp3Outstation(rtu.model_copy(update={"port": 0}))  # the outstation serves every point
    await os_.start()
    try:
        full = rtu_only(os_.port)
        data = full.model_dump(mode="json")
        points = data["devices"][0]["points"]
        sources = {(p.get("signal") or {}).get("source") for p in points}
        dropped = [p for p in points if p["group"] == "analog" and p["name"] not in sources][:2]
        data["devices"][0]["points"] = [p for p in data["devices"][0]["points"] if p not in dropped]
        cfg = Config.model_validate(data)  # ... the gateway knows two analogs fewer
        async with Collector(mosquitto.port, [status_topic(cfg)]) as sub:
            async with Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=0.5)) as gw:
                src = gw.sources[0]

                def counters():
                    msg = sub.latest(status_topic(cfg))
                    dev = (msg or {}).get("devices", {}).get(rtu.name, {})
                    c = dev.get("counters") or {}
                    return c if c.get("unmapped", 0) >= len(dropped) and c.get("link", {}).get("frames_in", 0) > 0 else None

                c = await sub.wait_for(counters, 15, "unmapped and link counters on the status topic")
        assert c["integrity_polls"] >= 1 and c["unmapped"] == src.unmapped.count
        assert c["link"]["frames_in"] >= 1 and c["link"]["frames_out"] >= 1 and c["link"]["malformed"] == 0
        assert isinstance(c["iin"], int)
        json.dumps(c)  # plain JSON data
    finally:
        await os_.stop()
