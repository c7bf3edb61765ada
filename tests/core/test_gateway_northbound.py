"""The gateway app with the northbound options of the site config: spool, Sparkplug B, one-way."""

from __future__ import annotations

import asyncio

import yaml

from devices.emulator import Emulator
from devices.mosquitto import Mosquitto
from gateway.app import Gateway, GatewayOptions
from gateway.config import load_config
from tests.northbound import pbdecode
from tests.support.mqtt import Collector
from tests.support.sites import modbus_site


def with_northbound(tmp_path, **nb):
    _, path = modbus_site(tmp_path, poll="200ms")
    data = yaml.safe_load(path.read_text())
    data["gateway"]["northbound"].update(nb)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


async def test_spool_keeps_values_and_seq_across_broker_outage_and_restart(tmp_path):
    broker = Mosquitto()
    cfg = with_northbound(tmp_path, spool={"path": str(tmp_path / "spool.db")}, analog_qos=1)
    async with Emulator(cfg) as emu:
        gw = Gateway(cfg, GatewayOptions(broker=broker.url))  # broker not started yet: everything spools
        await gw.start()
        await asyncio.sleep(1.0)
        emu.apply_command("meter1", "CB", 1)  # a discrete change while the broker is away
        await asyncio.sleep(0.6)
        spooled = gw.normaliser.seq
        assert spooled >= 8 and not gw.publisher.connected
        broker.start()
        try:
            async with Collector(broker.port, ["gridgate/v1/gw-test/meas/#"]) as sub:
                # retained last values arrive first; the drained backlog follows in seq order
                await sub.wait_for(lambda: max((m.json["seq"] for m in sub.messages), default=0) >= spooled, 15,
                                   "the spooled backlog")
                await gw.stop()
                gw2 = Gateway(cfg, GatewayOptions(broker=broker.url))  # restart: seq continues, no reuse
                assert gw2.normaliser.seq == gw.normaliser.seq
                await gw2.start()
                await sub.wait_for(lambda: max(m.json["seq"] for m in sub.messages) > gw.normaliser.seq, 10, "new seq")
                await gw2.stop()
            cb = [m.json["value"] for m in sub.messages if m.topic.endswith("SwitchPosition")]
            assert 1 in cb  # the change made during the outage was delivered
        finally:
            broker.stop()


async def test_sparkplug_alongside_cim(tmp_path, mosquitto):
    cfg = with_northbound(tmp_path, encoding="both", sparkplug={"group": "KGM"})
    async with Emulator(cfg):
        async with Collector(mosquitto.port, ["spBv1.0/#", "gridgate/v1/gw-test/meas/#"]) as sub:
            async with Gateway(cfg, GatewayOptions(broker=mosquitto.url)):
                await sub.wait_for(lambda: sub.on("/DBIRTH/") and sub.on("/meas/"), 10, "births and CIM values")
                nbirth = pbdecode.payload(sub.on("spBv1.0/KGM/NBIRTH/gw-test")[0].payload)
                assert nbirth["seq"] == 0 and nbirth["metrics"][0]["name"] == "bdSeq"
                dbirth = pbdecode.payload(sub.on("spBv1.0/KGM/DBIRTH/gw-test/meter1")[-1].payload)
                names = {m["name"]: m for m in dbirth["metrics"]}
                assert "INC1/CB/LineCurrent/A" in names and names["INC1/CB/LineCurrent/A"]["datatype"] == 10  # Double
                emu_change = sub.on("/meas/SUB/INC1/CB/LineCurrent/A")[-1].json["value"]
                assert emu_change == 182.4
            # clean stop: the Sparkplug session's NDEATH and the CIM offline status
            await sub.wait_for(lambda: sub.on("spBv1.0/KGM/NDEATH/gw-test"), 5, "NDEATH")
