"""Emulated IED (own process) → MMS reports → gateway normaliser → real Mosquitto → subscriber."""

import asyncio
from datetime import datetime, timezone

from gateway.app import Gateway, GatewayOptions
from gateway.config import Config
from gateway.site.quality import Q, from_cim
from tests.iec61850.support import IedProcess, ied_device
from tests.support.mqtt import Collector


def site(device) -> Config:
    return Config.model_validate(
        {
            "site": {"name": "T61850"},
            "gateway": {"id": "gw-61850"},
            "substations": [{"name": "S1", "bays": [{"name": "F1", "equipment": [{"name": "CB1", "type": "Breaker"}]}]}],
            "devices": [device.model_dump()],
        }
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def test_report_to_cim_value_on_mqtt(mosquitto):
    dev = ied_device(timeout=0.5)
    cfg = site(dev)
    with IedProcess(dev) as ied:
        async with Collector(mosquitto.port, ["gridgate/v1/gw-61850/meas/#"]) as sub:
            gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=1.0))
            async with gw:
                src = gw.sources[0]
                await sub.wait_for(lambda: src.connected, 10, "IED association")
                ts = ied.update("P", 4321.0, int(Q.QUESTIONABLE | Q.OSCILLATORY | Q.TEST), round(1_790_000_000.123, 6))
                topic = "S1/F1/CB1/ThreePhaseActivePower"

                def published():
                    m = sub.latest(topic)
                    return m if m and m["timeStamp"] == _iso(ts) else None

                m = await sub.wait_for(published, 10, "the reported P on MQTT")
                assert m["value"] == 4321.0
                assert m["quality"] == {"validity": "QUESTIONABLE", "source": "PROCESS", "oscillatory": True, "test": True}
                assert from_cim(m["quality"]) == int(Q.QUESTIONABLE | Q.OSCILLATORY | Q.TEST)
                assert m["provenance"] == {"device": "F1", "protocol": "iec61850", "address": "F1PROT/MMXU1.TotW.mag.f"}
                # a breaker operated through the gateway's driver shows up as a Discrete with its alias
                res = await src.operate("Pos", 2, "sbo")
                assert res.ok, res
                pos = await sub.wait_for(
                    lambda: (x := sub.latest("S1/F1/CB1/SwitchPosition")) and x["value"] == 2 and x, 10, "Pos closed"
                )
                assert pos["valueAlias"] == "closed" and pos["quality"]["validity"] == "GOOD"
                # IED goes away: the control room sees INVALID with the last value
                # (from a GOOD value: QUESTIONABLE | COMMS_LOST stays QUESTIONABLE in pipeline.mark_comms_lost,
                # reported to the lead)
                ts = ied.update("P", 4000.0, 0)
                await sub.wait_for(lambda: (x := sub.latest(topic)) and x["timeStamp"] == _iso(ts), 10, "good P")
                ied.stop()
                lost = await sub.wait_for(
                    lambda: (x := sub.latest(topic)) and x["quality"]["validity"] == "INVALID" and x, 10, "comms lost"
                )
                assert lost["value"] == 4000.0 and lost["quality"].get("failure") and lost["quality"].get("oldData")
                await asyncio.sleep(0)


async def test_primary_substation_ieds_serve_and_report():
    """The shipped site file's IEDs (on free ports here): every configured point comes through GI."""
    import os

    from gateway.config import load_config
    from gateway.southbound.iec61850 import MmsSource
    from tests.iec61850.conftest import fast_backoff, running
    from tests.iec61850.support import ROOT
    from tests.support.mosquitto import free_port

    cfg = load_config(os.path.join(ROOT, "configs", "primary-substation.yaml"))
    devs = [d.model_copy(update={"port": free_port()}) for d in cfg.devices if d.protocol == "iec61850"][:2]
    assert devs, "the site file has no IEC 61850 devices"
    for d in devs:
        with IedProcess(d) as ied:
            src = MmsSource(d, fast_backoff())
            async with running(src) as sink:
                names = [p.name for p in d.points]
                await sink.wait(lambda: src.connected and all(sink.of(n) for n in names), timeout=10, what=f"GI of {d.name}")
                assert not src._polled and src._rcbs
                p = d.points[0]
                ts = ied.update(p.name, 1.5, 0)
                r = await sink.wait(lambda: [x for x in sink.of(p.name) if x.timestamp == ts], what="report")
                assert r[-1].value == 1.5  # engineering value in, the same engineering value out
