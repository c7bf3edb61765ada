"""The RTU of configs/primary-substation.yaml, emulated, through the gateway to a real Mosquitto subscriber."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

from devices.dnp3.outstation import Dnp3Outstation
from gateway.app import Gateway, GatewayOptions
from gateway.config import Config, load_config
from tests.support.mqtt import Collector

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def rtu_only(port: int) -> Config:
    """The site with just its DNP3 RTU, moved to a free port."""
    full = load_config(CONFIG)
    data = full.model_dump(mode="json")
    data["devices"] = [d for d in data["devices"] if d["protocol"] == "dnp3"][:1]
    data["devices"][0]["port"] = port
    return Config.model_validate(data)


async def test_rtu_event_reaches_subscriber_with_source_time(mosquitto) -> None:
    probe = rtu_only(1)
    rtu = probe.devices[0]
    os_ = Dnp3Outstation(rtu.model_copy(update={"port": 0}))
    await os_.start()
    try:
        cfg = rtu_only(os_.port)
        analog = next(p for p in rtu.points if p.group == "analog" and p.event_class)
        prefix = f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/meas/#"
        async with Collector(mosquitto.port, [prefix]) as sub:
            async with Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=1.0)) as gw:
                src = gw.sources[0]
                await sub.wait_for(lambda: src.connected and src.stats["integrity_polls"] >= 1 and src.iin & 0xF0 == 0,
                                   10, "DNP3 startup")
                await asyncio.sleep(0.2)
                m = analog.measurement
                topic = f"{m.equipment}/{m.type}" + ("" if m.phases == "none" else f"/{m.phases}")
                ts = 1_790_000_000.125
                raw_value = 12.5  # engineering units, as the firmware reports them
                os_.update(analog.name, raw_value, 0, ts)
                msg = await sub.wait_for(
                    lambda: (x := sub.latest(topic)) and x["timeStamp"] == _iso(ts) and x, 10, "the RTU event on MQTT"
                )
                assert abs(msg["value"] - raw_value) < 1e-4 * abs(raw_value)
                assert msg["quality"]["validity"] == "GOOD"
                assert msg["provenance"]["protocol"] == "dnp3" and msg["provenance"]["address"] == f"32:{analog.index}"
                assert src.stats["event_polls"] == 0 and src.stats["unsolicited"] >= 2  # it came unsolicited
                # the RTU goes away: INVALID with the last value
                await os_.stop()
                lost = await sub.wait_for(
                    lambda: (x := sub.latest(topic)) and x["quality"]["validity"] == "INVALID" and x, 10, "comms lost"
                )
                assert lost["quality"].get("failure") and lost["quality"].get("oldData")
    finally:
        await os_.stop()
