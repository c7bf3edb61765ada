"""The command path end to end: control room → MQTT → CommandRouter → our DNP3 master →
our DNP3 outstation, and every refusal answered on the result topic with its reason."""

from __future__ import annotations

import json
import time

import pytest

from gateway.northbound.commands import CommandPoint, CommandRouter
from gateway.northbound.mqtt import MqttPublisher
from tests.northbound.rawsub import RawSubscriber

dnp3 = pytest.importorskip("tests.dnp3.conftest")
from tests.dnp3.sites import device  # noqa: E402
from tests.support.wait import until

POINTS = [{"name": "CB", "group": "double_binary", "index": 0, "command": {"enabled": True, "mode": "sbo"}}]
CB = CommandPoint("5b3c0a52-cb01", "rtu1", "CB", "Discrete", operators=("alice",), mode="sbo", ttl=5.0)
CMD = "gridgate/v1/gw1/cmd"


async def _until(cond, timeout: float = 3.0) -> None:  # noqa: ANN001
    return await until(cond, timeout, 0.02)

def _req(id_, value=2, operator="alice", issued=None):
    return json.dumps({"id": id_, "value": value, "operator": operator, "issued": issued or time.time()}).encode()


@pytest.mark.parametrize("allowed", [True, False])
async def test_command_operates_the_breaker_only_where_allowed(mosquitto, allowed):
    async with dnp3.outstation(device(POINTS)) as os_, dnp3.source(device(POINTS), os_.port) as (src, _got):
        await _until(lambda: src.connected and src.stats["integrity_polls"] >= 1)
        pub = MqttPublisher(mosquitto.url, "gw1")
        router = CommandRouter("gridgate/v1", "gw1", [CB], {"rtu1": src}, pub.publish, allowed=allowed)
        pub.subscribe(router.subscription, router.on_message)
        await pub.start()
        async with RawSubscriber(mosquitto.port, [f"{CMD}/+/result"], client_id="control-room") as room:
            before = os_.value("CB")
            room.publish(f"{CMD}/{CB.mrid}", _req("c1"))
            assert await room.wait_for(lambda m: len(m) == 1, 5)
            res = json.loads(room.messages[0].payload)
            if allowed:
                assert (res["id"], res["status"], res["reason"], res["mode"]) == ("c1", "done", None, "sbo")
                assert res["detail"]["name"] == "SUCCESS"
                assert os_.value("CB") == 2  # the emulated breaker really closed
            else:
                assert (res["status"], res["reason"]) == ("rejected", "not_allowed_by_profile")
                assert os_.value("CB") == before
        await pub.stop()


async def test_every_refusal_has_a_reason_and_touches_nothing(mosquitto):
    async with dnp3.outstation(device(POINTS)) as os_, dnp3.source(device(POINTS), os_.port) as (src, _got):
        await _until(lambda: src.connected and src.stats["integrity_polls"] >= 1)
        pub = MqttPublisher(mosquitto.url, "gw1")
        router = CommandRouter("gridgate/v1", "gw1", [CB], {"rtu1": src}, pub.publish, allowed=True)
        pub.subscribe(router.subscription, router.on_message)
        await pub.start()
        async with RawSubscriber(mosquitto.port, [f"{CMD}/+/result"], client_id="control-room") as room:
            room.publish(f"{CMD}/{CB.mrid}", _req("ok-1", value=1))
            assert await room.wait_for(lambda m: len(m) == 1, 5)
            assert json.loads(room.messages[0].payload)["status"] == "done" and os_.value("CB") == 1
            cases = [
                (f"{CMD}/{CB.mrid}", b"{not json", "bad_request"),
                (f"{CMD}/{CB.mrid}", json.dumps({"id": "x", "value": 2}).encode(), "bad_request"),
                (f"{CMD}/{CB.mrid}", _req("m-1", operator="mallory"), "operator_not_allowed"),
                (f"{CMD}/{CB.mrid}", _req("old-1", issued=time.time() - 60), "expired"),
                (f"{CMD}/{CB.mrid}", _req("fut-1", issued=time.time() + 60), "clock_skew"),
                (f"{CMD}/{CB.mrid}", _req("ok-1"), "duplicate"),  # a replay of the first request
                (f"{CMD}/unknown-mrid", _req("u-1"), "not_commandable"),
                (f"{CMD}/{CB.mrid}", _req("v-1", value=1.5), "bad_value"),
            ]
            for topic, payload, _ in cases:
                room.publish(topic, payload)
            assert await room.wait_for(lambda m: len(m) == 1 + len(cases), 5), [x.payload for x in room.messages]
            got = [json.loads(m.payload) for m in room.messages[1:]]
            assert [(r["status"], r["reason"]) for r in got] == [("rejected", why) for *_, why in cases]
            assert "issued: Field required" in got[1]["detail"]
            assert os_.value("CB") == 1  # none of them reached the breaker
            assert router.stats["done"] == 1 and sum(router.stats.values()) == 1 + len(cases)
        await pub.stop()
