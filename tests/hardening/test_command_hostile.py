"""Hostile command payloads (issue 14): strict parsing, one value rule for every protocol, exactly
one result per request, nothing unauthorised reaches the device. The end-to-end campaign runs
over real Mosquitto into our DNP3 master and a real DNP3 outstation (tests/dnp3 peers)."""

from __future__ import annotations

import json
import random
import time

import pytest
from pydantic import ValidationError

from gateway.northbound.command_schema import MAX_PAYLOAD, REASONS, BadRequest, CommandRequest, CommandResult, loads_strict
from gateway.northbound.command_values import check_value
from gateway.northbound.commands import CommandPoint, CommandRouter
from gateway.northbound.mqtt import MqttPublisher
from tests.northbound.rawsub import RawSubscriber

GOOD = {"id": "c1", "value": 2, "operator": "alice", "issued": 1_790_000_000.0}


@pytest.mark.parametrize("payload, says", [
    (b'{"id": "c1", "value": 2, "operator": "alice", "issued": NaN}', "NaN"),
    (b'{"id": "c1", "value": Infinity, "operator": "alice", "issued": 1}', "Infinity"),
    (b'{"id": "c1", "value": -Infinity, "operator": "alice", "issued": 1}', "-Infinity"),
    (b'{"id": "c1", "value": 2, "operator": "alice", "issued": 1e999}', "out of range"),
    (b'{"id": "c1", "value": 2, "operator": "alice", "issued": 1, "x": [NaN]}', "NaN"),  # anywhere, even unknown keys
    (b"[" * 100_000 + b"]" * 100_000, "bytes"),  # the size bound comes first
    (b"[" * 2000 + b"]" * 2000, "nested deeper"),
    (b'{"a": ' * 10 + b"1" + b"}" * 10, "nested deeper"),
    (b'{"id": "c1", "id": "c2", "value": 2, "operator": "alice", "issued": 1}', "twice"),
    (b'{"id": "c1", "value": ' + b"9" * 500 + b', "operator": "a", "issued": 1}', "digits"),
    (b"\xff\xfe", "not JSON"),
    (b"", "not JSON"),
    (b"x" * (MAX_PAYLOAD + 1), "bytes"),
])
def test_strict_parser_refuses_with_a_reason(payload, says):
    with pytest.raises(BadRequest, match=says):
        loads_strict(payload)


@pytest.mark.parametrize("field, bad", [
    ("value", "13"), ("value", None), ("value", [2]), ("issued", "yesterday"), ("issued", "2026-11-22T16:00:00"),
    ("id", 42), ("id", ""), ("id", "a b"), ("operator", ["alice"]), ("extra", 1),
])
def test_request_fields_have_their_json_types(field, bad):
    with pytest.raises(ValidationError):
        CommandRequest.model_validate({**GOOD, field: bad})
    assert CommandRequest.model_validate(GOOD).issued == 1_790_000_000.0


@pytest.mark.parametrize("kind, mtype, codes, value, expect", [
    ("Discrete", "SwitchPosition", (), 1, 1), ("Discrete", "SwitchPosition", (), 2.0, 2),
    ("Discrete", "SwitchPosition", (), 0, None), ("Discrete", "SwitchPosition", (), 3, None),
    ("Discrete", "SwitchPosition", (), 13, None), ("Discrete", "SwitchPosition", (), True, None),
    ("Discrete", "SwitchPosition", (), 1.5, None), ("Discrete", "SwitchPosition", (), "2", None),
    ("Discrete", "TapPosition", (), 7, 7), ("Discrete", "TapPosition", (), 7.5, None),
    ("Discrete", "TapPosition", (1, 2), 3, None), ("Discrete", "TapPosition", (1, 2), 2, 2),
    ("Discrete", "ProtectionStart", (), True, 1),
    ("Analog", "Voltage", (), 11.2, 11.2), ("Analog", "Voltage", (), float("nan"), None),
    ("Analog", "Voltage", (), True, None), ("Analog", "Voltage", (), "13", None),
    ("Accumulator", "ActiveEnergy", (), 1, None),
])
def test_one_value_rule_for_every_protocol(kind, mtype, codes, value, expect):
    got, why = check_value(kind, mtype, codes, value)
    assert got == expect and (why is None) == (expect is not None), (got, why)


def test_every_reason_has_one_status_and_results_match_the_schema():
    assert set(REASONS.values()) <= {"rejected", "failed"}
    out = []
    router = CommandRouter("gg", "gw", [], {}, lambda t, p, q, r: out.append(json.loads(p)), allowed=False)
    import asyncio

    asyncio.run(router.handle("gg/gw/cmd/m1", json.dumps({**GOOD, "issued": time.time()}).encode()))
    assert len(out) == 1 and out[0]["reason"] == "not_allowed_by_profile"
    CommandResult.model_validate(out[0])


# ---------------------------------------------------------------- end to end, seeded campaign

dnp3 = pytest.importorskip("tests.dnp3.conftest")
from tests.dnp3.peer import device  # noqa: E402
from tests.support.wait import until

POINTS = [{"name": "CB", "group": "double_binary", "index": 0, "command": {"enabled": True, "mode": "sbo"}}]
CB = CommandPoint("5b3c0a52-cb01", "rtu1", "CB", "Discrete", operators=("alice",), mode="sbo", ttl=5.0,
                  measurement_type="SwitchPosition")
CMD = "gridgate/v1/gw1/cmd"


def _hostile(rng: random.Random, i: int) -> bytes:
    """One of a dozen families of bad requests, none of which may operate the breaker."""
    base = {"id": f"h{i}", "value": 1, "operator": "alice", "issued": time.time()}
    family = i % 12
    if family == 0:
        return json.dumps({**base, "issued": float("nan")}).encode()  # Python writes NaN
    if family == 1:
        return json.dumps({**base, "value": rng.choice([0, 3, 13, -1, 1.5, 2 ** 40])}).encode()
    if family == 2:
        return json.dumps({**base, "value": rng.choice(["1", "13", None, [1], {"v": 1}, True])}).encode()
    if family == 3:
        n = rng.randint(5, 50_000)
        return b"[" * n + b"]" * n
    if family == 4:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    if family == 5:
        return json.dumps({**base, "operator": rng.choice(["mallory", "", "alice "])}).encode()
    if family == 6:
        return json.dumps({**base, "issued": rng.choice([time.time() - 3600, time.time() + 3600, "Infinity", 1e308])}).encode()
    if family == 7:
        return json.dumps({**base, "pad": "x" * rng.randint(MAX_PAYLOAD, 60_000)}).encode()
    if family == 8:
        return json.dumps({**base, "value": float("inf")}).encode()
    if family == 9:
        body = json.dumps(base)
        cut = rng.randint(0, len(body) - 1)
        return body[:cut].encode()  # truncated
    if family == 10:
        gone = rng.choice(list(base))
        return json.dumps({k: v for k, v in base.items() if k != gone}).encode()
    return b'{"id": "h%d", "id": "x", "value": 1, "operator": "alice", "issued": %f}' % (i, time.time())


async def _until(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    return await until(cond, timeout, 0.05)

async def test_seeded_hostile_campaign_one_result_each_nothing_executes(mosquitto):
    rng = random.Random(14)
    n = 240
    async with dnp3.outstation(device(POINTS)) as os_, dnp3.source(device(POINTS), os_.port) as (src, _got):
        await _until(lambda: src.connected and src.stats["integrity_polls"] >= 1)
        pub = MqttPublisher(mosquitto.url, "gw1")
        router = CommandRouter("gridgate/v1", "gw1", [CB], {"rtu1": src}, pub.publish, allowed=True)
        pub.subscribe(router.subscription, router.on_message)
        await pub.start()
        async with RawSubscriber(mosquitto.port, [f"{CMD}/+/result"], client_id="control-room") as room:
            before = os_.value("CB")
            for i in range(n):
                room.publish(f"{CMD}/{CB.mrid}", _hostile(rng, i))
            assert await room.wait_for(lambda m: len(m) >= n, 60), len(room.messages)
            await room.wait_for(lambda m: len(m) > n, 1.0)  # and not one more
            results = [json.loads(m.payload) for m in room.messages]
            assert len(results) == n
            assert {r["status"] for r in results} == {"rejected"}, [r for r in results if r["status"] != "rejected"]
            for r in results:
                CommandResult.model_validate(r)
            reasons = {r["reason"] for r in results}
            assert reasons <= {"bad_request", "bad_value", "operator_not_allowed", "expired", "clock_skew"}, reasons
            assert {"bad_request", "bad_value", "operator_not_allowed"} <= reasons
            assert os_.value("CB") == before  # the breaker never moved
            assert sum(router.stats.values()) == n and not router.stats.get("done")
            # and the path still works: a valid request after the campaign operates the breaker
            want = 1 if before == 2 else 2
            room.publish(f"{CMD}/{CB.mrid}", json.dumps({"id": "ok-1", "value": want, "operator": "alice",
                                                         "issued": time.time()}).encode())
            assert await room.wait_for(lambda m: len(m) == n + 1, 10)
            assert json.loads(room.messages[-1].payload)["status"] == "done" and os_.value("CB") == want
        await pub.stop()


def test_example_site_command_points_carry_their_value_rule():
    from gateway.config import load_config
    from gateway.northbound.commands import command_points
    from tests.hardening.test_all_features_site import SITE

    pts = command_points(load_config(str(SITE)))
    assert pts and all(p.measurement_type == "SwitchPosition" for p in pts if p.kind == "Discrete")
    for p in pts:  # a breaker of any protocol refuses 3 and "13" alike
        assert check_value(p.kind, p.measurement_type, p.codes, 3)[1] and check_value(p.kind, p.measurement_type, p.codes, "13")[1]
