"""Signed command requests (issue 14): Ed25519, per-operator public keys in the site file. Only a
request signed by the operator's own key, for this topic, reaches the device. Real Mosquitto,
our DNP3 master, a real DNP3 outstation."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.northbound.command_auth import command_keys, sign
from gateway.northbound.commands import CommandPoint, CommandRouter
from gateway.northbound.mqtt import MqttPublisher
from gateway.site.options import NorthboundOptions
from tests.northbound.rawsub import RawSubscriber

dnp3 = pytest.importorskip("tests.dnp3.conftest")
from tests.dnp3.peer import device  # noqa: E402
from tests.support.wait import until

POINTS = [{"name": "CB", "group": "double_binary", "index": 0, "command": {"enabled": True, "mode": "sbo"}}]
CB = CommandPoint("5b3c0a52-cb01", "rtu1", "CB", "Discrete", operators=("alice", "bob"), mode="sbo", ttl=5.0,
                  measurement_type="SwitchPosition")
CMD = "gridgate/v1/gw1/cmd"


def _pub64(k: Ed25519PrivateKey) -> str:
    return base64.b64encode(k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def test_site_keys_are_checked_with_place_and_fix():
    good = _pub64(Ed25519PrivateKey.generate())
    assert NorthboundOptions.model_validate({"command_keys": {"alice": good}}).command_keys == {"alice": good}
    for bad, says in ((" " + good, "not base64"), (base64.b64encode(b"x" * 31).decode(), "31 bytes")):
        with pytest.raises(ValueError, match=f"command_keys.alice: {says}"):
            NorthboundOptions.model_validate({"command_keys": {"alice": bad}})


def _request(id_, value, operator="alice"):
    return json.dumps({"id": id_, "value": value, "operator": operator, "issued": time.time()})


async def _until(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    return await until(cond, timeout, 0.05)

async def test_only_the_operators_own_signature_for_this_topic_operates(mosquitto):
    alice, bob, mallory = (Ed25519PrivateKey.generate() for _ in range(3))
    keys = command_keys({"alice": _pub64(alice), "bob": _pub64(bob)})
    topic = f"{CMD}/{CB.mrid}"
    async with dnp3.outstation(device(POINTS)) as os_, dnp3.source(device(POINTS), os_.port) as (src, _got):
        await _until(lambda: src.connected and src.stats["integrity_polls"] >= 1)
        pub = MqttPublisher(mosquitto.url, "gw1")
        router = CommandRouter("gridgate/v1", "gw1", [CB], {"rtu1": src}, pub.publish, allowed=True, keys=keys)
        pub.subscribe(router.subscription, router.on_message)
        await pub.start()
        async with RawSubscriber(mosquitto.port, [f"{CMD}/+/result"], client_id="room") as room:
            before = os_.value("CB")
            target = 1 if before == 2 else 2
            tampered = sign(alice, topic, _request("t-1", 3 - target))
            tampered["request"] = tampered["request"].replace(f'"value": {3 - target}', f'"value": {target}')
            other_topic = sign(alice, f"{CMD}/another-mrid", _request("o-1", target))
            bad = [
                (_request("u-1", target).encode(), "bad_request"),  # unsigned: not an envelope
                (json.dumps(sign(mallory, topic, _request("m-1", target))).encode(), "bad_signature"),  # claims alice
                (json.dumps(sign(mallory, topic, _request("m-2", target, "mallory"))).encode(), "bad_signature"),  # no key
                (json.dumps(sign(bob, topic, _request("b-1", target, "alice"))).encode(), "bad_signature"),  # bob as alice
                (json.dumps(tampered).encode(), "bad_signature"),
                (json.dumps(other_topic).encode(), "bad_signature"),  # replayed onto another point
                (json.dumps({**sign(alice, topic, _request("s-1", target)), "signature": "AAAA"}).encode(), "bad_signature"),
                (json.dumps({"request": _request("s-2", target), "signature": "%%%"}).encode(), "bad_signature"),
            ]
            for payload, _ in bad:
                room.publish(topic, payload)
            assert await room.wait_for(lambda m: len(m) == len(bad), 10)
            got = [json.loads(m.payload) for m in room.messages]
            assert [(r["status"], r["reason"]) for r in got] == [("rejected", why) for _, why in bad], got
            await asyncio.sleep(0.3)
            assert os_.value("CB") == before
            room.publish(topic, json.dumps(sign(alice, topic, _request("a-1", target))).encode())
            assert await room.wait_for(lambda m: len(m) == len(bad) + 1, 10)
            r = json.loads(room.messages[-1].payload)
            assert (r["id"], r["status"], r["operator"]) == ("a-1", "done", "alice") and os_.value("CB") == target
        await pub.stop()
