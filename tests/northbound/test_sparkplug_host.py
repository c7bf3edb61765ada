"""A Sparkplug 3.0 primary host against the real gateway: real Mosquitto, an emulated Modbus RTU with a
breaker, the host an independent raw-socket MQTT client decoding with tests/northbound/pbdecode.py.

What a host relies on: no births before its STATE is online; births with values; data held while it is
offline and re-sent as historical; bdSeq +1 per session and across restarts (an old NDEATH never matches
the new session); DCMD open/close of the breaker through the command policy, one result each.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from devices.emulator import Emulator
from devices.mosquitto import Mosquitto
from gateway.app import Gateway, GatewayOptions
from gateway.config import Config
from tests.northbound import pbdecode
from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import free_port
from tests.support.wait import until

G, GW, HOST = "G", "gw-spb", "scada"
STATE = f"spBv1.0/STATE/{HOST}"
OPEN, CLOSED = 1, 2


def site(port: int, state: Path, nb: dict | None = None, **sparkplug) -> Config:
    return Config.model_validate({
        "site": {"name": "SPB"},
        "gateway": {"id": GW, "northbound": {
            "commands": True, "encoding": "both", "integrity_interval": "30s", **(nb or {}),
            "sparkplug": {"group": G, "primary_host": HOST, "state": str(state), "birth_wait": "4s", **sparkplug}}},
        "substations": [{"name": "S1", "bays": [{"name": "T1", "equipment": [{"name": "CB", "type": "Breaker"}]}]}],
        "devices": [{"name": "rtu1", "kind": "rtu", "protocol": "modbus", "port": port, "poll_interval": 0.2,
                     "timeout": 0.5, "points": [
                         {"name": "CB", "table": "coil", "address": 0, "type": "bool", "value_map": {0: 1, 1: 2},
                          "measurement": {"equipment": "S1/T1/CB", "type": "SwitchPosition"},
                          "signal": {"kind": "discrete", "initial": CLOSED},
                          "command": {"enabled": True, "mode": "direct", "operators": [HOST], "ttl": 5}},
                         {"name": "Ia", "table": "holding", "address": 0, "type": "uint16", "scale": 0.1,
                          "measurement": {"equipment": "S1/T1/CB", "type": "LineCurrent", "phases": "A"},
                          "signal": {"kind": "sine", "mean": 200, "amplitude": 50, "period": 3}}]}],
    })


def state(online: bool) -> bytes:
    return json.dumps({"online": online, "timestamp": int(time.time() * 1000)}).encode()


def kinds(host: RawSubscriber, kind: str, start: int = 0) -> list[dict]:
    return [pbdecode.payload(m.payload) for m in host.messages[start:] if f"/{kind}/" in m.topic]


def dcmd(name: str, value: int, issued: float | None = None, **props: str) -> bytes:
    ts = int((time.time() if issued is None else issued) * 1000)
    return pbdecode.command(ts, [{"name": name, "datatype": 3, "value": value, "properties": props}])


async def test_primary_host_lifecycle_dcmd_and_restart(mosquitto, tmp_path):
    cfg = site(free_port(), tmp_path / "spb.json")
    async with Emulator(cfg, tick=0.05) as emu, RawSubscriber(mosquitto.port, [f"spBv1.0/{G}/#"], client_id=HOST) as host:
        host.publish(STATE, state(False), retain=True)
        gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=60.0))
        await gw.start()
        try:
            # STATE offline → the session is up, values are read, but nothing is born
            await until(lambda: gw.sparkplug.publisher.connected and len(gw.normaliser.last) == 2, 10)
            await until(lambda: time.monotonic() - gw.sparkplug._started > 1.0, 5)
            assert [m.topic for m in host.messages] == []

            # online → NBIRTH (bdSeq 0: first session ever) and a DBIRTH with values, units, mRIDs, small aliases
            host.publish(STATE, state(True), retain=True)
            assert await host.wait_for(lambda ms: any("/DBIRTH/" in m.topic for m in ms), 10)
            nbirth, dbirth = kinds(host, "NBIRTH")[0], kinds(host, "DBIRTH")[0]
            assert nbirth["seq"] == 0 and nbirth["metrics"][0] == {**nbirth["metrics"][0], "name": "bdSeq", "value": 0}
            by_name = {m["name"]: m for m in dbirth["metrics"]}
            ia, cb = by_name["T1/CB/LineCurrent/A"], by_name["T1/CB/SwitchPosition"]
            assert 140 <= ia["value"] <= 260 and ia["properties"]["Quality"]["value"] == 192 and not ia.get("is_null")
            assert cb["value"] == CLOSED and cb["properties"]["Quality"]["value"] == 192
            assert ia["properties"]["engUnit"]["value"] == "A"
            assert ia["properties"]["mRID"]["value"] == gw.catalog[next(k for k in gw.catalog if k.endswith("Ia"))].mrid
            result = by_name["T1/CB/SwitchPosition/CommandResult"]
            assert (result["value"], result["properties"]["Quality"]["value"]) == ("", 192)  # no command yet
            result_alias = result["alias"]
            aliases = {n: m["alias"] for n, m in by_name.items()}
            assert sorted(aliases.values()) == [1, 2, 3]

            # live data flows; readings from before the births (host offline) came first, flagged historical
            assert await host.wait_for(lambda ms: sum(not m.get("is_historical") for d in kinds(host, "DDATA")
                                                      for m in d["metrics"]) >= 3, 10)
            flags = [bool(m.get("is_historical")) for d in kinds(host, "DDATA") for m in d["metrics"]]
            assert flags == sorted(flags, reverse=True)  # historical ones only before the first live one
            assert all(m["timestamp"] <= dbirth["timestamp"] for d in kinds(host, "DDATA") for m in d["metrics"]
                       if m.get("is_historical"))

            # host offline mid-run → data held (host_offline: spool)
            offline_at = time.time()
            host.publish(STATE, state(False), retain=True)
            await until(lambda: not gw.sparkplug.host_online, 5)
            await host.wait_for(lambda ms: False, 0.3)  # DDATA already on the wire before the flip arrive first
            n, held = len(host.messages), gw.sparkplug.stats["spooled"]
            await until(lambda: gw.sparkplug.stats["spooled"] >= held + 4, 10)
            assert kinds(host, "DDATA", n) == [] and kinds(host, "NBIRTH", n) == []
            back_at = time.time()

            # host back → rebirth with the same bdSeq (the registered NDEATH's), then the held readings as historical
            host.publish(STATE, state(True), retain=True)
            assert await host.wait_for(lambda ms: any(m.get("is_historical") is None
                                                      for d in kinds(host, "DDATA", n) for m in d["metrics"]), 10)
            after = kinds(host, "NBIRTH", n)
            assert len(after) == 1 and after[0]["metrics"][0]["value"] == 0 and after[0]["seq"] == 0
            hist = [m for d in kinds(host, "DDATA", n) for m in d["metrics"] if m.get("is_historical")]
            assert len(hist) >= 4
            assert all(offline_at * 1000 - 500 <= m["timestamp"] <= back_at * 1000 + 500 for m in hist)
            seqs = [p["seq"] for p in [pbdecode.payload(m.payload) for m in host.messages[n:]
                                       if "/NBIRTH/" in m.topic or "/DBIRTH/" in m.topic or "/DDATA/" in m.topic]]
            assert seqs == [(seqs[0] + i) % 256 for i in range(len(seqs))] and seqs[0] == 0  # no breaks after rebirth

            # DCMD: open and close the breaker through the command policy; one result DDATA each
            async def command(payload: bytes, topic: str = f"spBv1.0/{G}/DCMD/{GW}/rtu1") -> dict:
                k = len(host.messages)
                host.publish(topic, payload)
                assert await host.wait_for(lambda ms: any(m["alias"] == result_alias for d in kinds(host, "DDATA", k)
                                                          for m in d["metrics"]), 10)
                return json.loads(next(m["value"] for d in kinds(host, "DDATA", k) for m in d["metrics"]
                                       if m["alias"] == result_alias))

            fw = emu.fw.index("rtu1", "CB")
            res = await command(dcmd("T1/CB/SwitchPosition", OPEN))
            assert (res["status"], res["operator"], res["value"]) == ("done", HOST, OPEN)
            await until(lambda: emu.fw.value(fw) == OPEN, 5)  # the emulated breaker really opened
            res = await command(dcmd("T1/CB/SwitchPosition", CLOSED))
            assert res["status"] == "done"
            await until(lambda: emu.fw.value(fw) == CLOSED, 5)
            res = await command(dcmd("T1/CB/SwitchPosition", OPEN, issued=time.time() - 60))
            assert (res["status"], res["reason"]) == ("rejected", "expired")
            res = await command(dcmd("T1/CB/SwitchPosition", OPEN, operator="mallory"))
            assert (res["status"], res["reason"]) == ("rejected", "operator_not_allowed")
            res = await command(dcmd("T1/CB/SwitchPosition", 3))
            assert (res["status"], res["reason"]) == ("rejected", "bad_value")
            assert emu.fw.value(fw) == CLOSED  # none of the refused ones reached the breaker
            # an NCMD naming {device}/{metric} is the same device command
            res = await command(dcmd("rtu1/T1/CB/SwitchPosition", OPEN), f"spBv1.0/{G}/NCMD/{GW}")
            assert res["status"] == "done", res
            await until(lambda: emu.fw.value(fw) == OPEN, 5)
            # the CIM path's router handled them all: cmd/{mRID} and DCMD share one policy (one result per request)
            assert gw.commands.stats["done"] == 3 and sum(gw.commands.stats.values()) == 6
        finally:
            await gw.stop()

        # clean stop: NDEATH with the session's bdSeq 0
        assert await host.wait_for(lambda ms: kinds(host, "NDEATH"), 5)
        assert kinds(host, "NDEATH")[-1]["metrics"][0]["value"] == 0

        # restart: bdSeq 1 from the state file, same aliases; an unclean loss: the will carries 1, the next session 2
        n = len(host.messages)
        gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=60.0))
        await gw.start()
        try:
            assert await host.wait_for(lambda ms: kinds(host, "DBIRTH", n), 15)
            assert kinds(host, "NBIRTH", n)[0]["metrics"][0]["value"] == 1
            assert {m["name"]: m["alias"] for m in kinds(host, "DBIRTH", n)[0]["metrics"]} == aliases
            gw.sparkplug.publisher._client._connection._transport.abort()
            assert await host.wait_for(lambda ms: len(kinds(host, "NBIRTH", n)) == 2, 15)
        finally:
            await gw.stop()
        deaths = [d["metrics"][0]["value"] for d in kinds(host, "NDEATH", n)]
        births = [d["metrics"][0]["value"] for d in kinds(host, "NBIRTH", n)]
        assert births == [1, 2] and deaths == [1, 2]  # each NDEATH names exactly the session it ends
        order = [(m.topic.split("/")[2], pbdecode.payload(m.payload)["metrics"][0]["value"])
                 for m in host.messages[n:] if "/NBIRTH/" in m.topic or "/NDEATH/" in m.topic]
        assert order == [("NBIRTH", 1), ("NDEATH", 1), ("NBIRTH", 2), ("NDEATH", 2)]


async def test_broker_outage_readings_resent_as_historical_with_original_timestamps(tmp_path):
    cfg = site(free_port(), tmp_path / "spb.json")
    broker = Mosquitto().start()
    try:
        async with Emulator(cfg, tick=0.05):
            async with RawSubscriber(broker.port, [f"spBv1.0/{G}/#"], client_id=HOST) as host:
                host.publish(STATE, state(True), retain=True)
                gw = Gateway(cfg, GatewayOptions(broker=broker.url, status_interval=60.0))
                await gw.start()
                assert await host.wait_for(lambda ms: len(kinds(host, "DDATA")) >= 2, 15)
            try:
                broker.stop()
                down_at = time.time()
                held = gw.sparkplug.stats["spooled"]
                await until(lambda: gw.sparkplug.stats["spooled"] >= held + 5, 10)
                broker.start()  # no persistence: the host must say it is online again
                up_at = time.time()
                async with RawSubscriber(broker.port, [f"spBv1.0/{G}/#"], client_id=HOST) as host:
                    await until(lambda: gw.sparkplug.publisher.connected, 15)
                    assert kinds(host, "NBIRTH") == []  # reconnected, but waits for the host
                    host.publish(STATE, state(True), retain=True)
                    assert await host.wait_for(lambda ms: any(not m.get("is_historical") for d in kinds(host, "DDATA")
                                                              for m in d["metrics"]), 15)
                    assert kinds(host, "NBIRTH")[0]["metrics"][0]["value"] == 1  # the second session
                    ddata = [m for d in kinds(host, "DDATA") for m in d["metrics"]]
                    hist = [m for m in ddata if m.get("is_historical")]
                    assert len(hist) >= 5
                    assert all(down_at * 1000 - 500 <= m["timestamp"] <= up_at * 1000 + 2000 for m in hist)
                    assert ddata.index(hist[-1]) < next(i for i, m in enumerate(ddata) if not m.get("is_historical"))
                    assert [m["timestamp"] for m in hist] == sorted(m["timestamp"] for m in hist)  # in order
            finally:
                await gw.stop()
    finally:
        broker.stop()


async def test_readings_held_at_a_restart_stay_in_the_spool_and_follow_the_next_births(mosquitto, tmp_path):
    cfg = site(free_port(), tmp_path / "spb.json", nb={"spool": {"path": str(tmp_path / "spool.db")}})
    async with Emulator(cfg, tick=0.05), RawSubscriber(mosquitto.port, [f"spBv1.0/{G}/#"], client_id=HOST) as host:
        host.publish(STATE, state(False), retain=True)
        gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=60.0))
        await gw.start()
        try:
            await until(lambda: gw.sparkplug.stats["spooled"] >= 5, 10)  # host offline: held, in the spool file
            held = gw.sparkplug.outbox.backlog()
            stopped_at = time.time()
        finally:
            await gw.stop()
        assert (tmp_path / "spool.sparkplug.db").exists() and held >= 5
        assert gw.sparkplug.stats["undelivered_at_stop"] == 0  # kept, not lost
        gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=60.0))
        await gw.start()
        try:
            host.publish(STATE, state(True), retain=True)
            assert await host.wait_for(lambda ms: any(not m.get("is_historical") for d in kinds(host, "DDATA")
                                                      for m in d["metrics"]), 15)
            assert [d["metrics"][0]["value"] for d in kinds(host, "NBIRTH")] == [1]  # births of the second process
            before = [m for d in kinds(host, "DDATA") for m in d["metrics"] if m["timestamp"] <= stopped_at * 1000]
            assert len(before) >= held and all(m.get("is_historical") for m in before)
        finally:
            await gw.stop()


async def test_one_way_profile_reads_nothing_and_refuses_a_primary_host(mosquitto, tmp_path):
    import pytest

    cfg = site(free_port(), tmp_path / "spb.json")
    gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=60.0, inbound=False))
    with pytest.raises(ValueError, match="primary_host: this network profile allows no inbound"):
        await gw.start()
    await gw.stop()
    cfg = site(free_port(), tmp_path / "spb2.json", primary_host=None)
    async with Emulator(cfg, tick=0.05) as emu, RawSubscriber(mosquitto.port, [f"spBv1.0/{G}/#"], client_id=HOST) as host:
        gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=60.0, inbound=False))
        await gw.start()
        try:
            assert await host.wait_for(lambda ms: kinds(host, "DBIRTH"), 10)  # no host to wait for: births
            assert gw.sparkplug.publisher._subscriptions == {}  # no NCMD, DCMD or STATE subscription
            fw = emu.fw.index("rtu1", "CB")
            n = len(host.messages)
            host.publish(f"spBv1.0/{G}/DCMD/{GW}/rtu1", dcmd("T1/CB/SwitchPosition", OPEN))
            host.publish(f"spBv1.0/{G}/NCMD/{GW}", pbdecode.ncmd_rebirth())
            await host.wait_for(lambda ms: False, 1.5)
            assert emu.fw.value(fw) == CLOSED and kinds(host, "NBIRTH", n) == []
            assert gw.sparkplug.stats["births"] == 1 and not any(k.startswith("dcmd") for k in gw.sparkplug.stats)
        finally:
            await gw.stop()
