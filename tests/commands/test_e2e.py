"""The command path end to end through the real gateway: control room (raw-socket MQTT client) →
Mosquitto → gateway → Modbus / DNP3 / IEC 61850 driver → emulated device → firmware state →
changed measurement back on MQTT. Every refusal is answered with its reason and touches nothing."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import pytest

from tests.commands.site import CLOSED, CMD, GW, OPEN, Room, lab, request

MEAS = f"gridgate/v1/{GW}/meas/#"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _published(room: Room, topic_end: str, value: float, after: float, timeout: float = 5.0) -> tuple[dict, float]:
    """The first measurement on ``…/meas/…{topic_end}`` with ``value`` and a source time ≥ ``after``;
    also the monotonic time it arrived."""

    def hit() -> dict | None:
        for m in room.measurement(topic_end):
            if m["value"] == pytest.approx(value, abs=1e-6) and _epoch(m["timeStamp"]) >= after - 0.002:
                return m
        return None

    assert await room.wait_for(lambda _ms: hit() is not None, timeout), \
        f"{topic_end}={value} not published; saw {[(m['value'], m['timeStamp']) for m in room.measurement(topic_end)]}"
    return hit(), time.monotonic()  # type: ignore[return-value]


# (device, point, value, firmware state after, measurement topic end, published value, detail checks)
OPERATIONS = [
    ("mb1", "CB", CLOSED, 2.0, "S1/T1/CB/SwitchPosition", 2, {"status": "accepted", "function": 5, "registers": [1]}),
    ("mb1", "CB", OPEN, 1.0, "S1/T1/CB/SwitchPosition", 1, {"function": 5, "registers": [0]}),
    ("mb1", "TAP", 12, 12.0, "S1/T1/TX/TapPosition", 12, {"function": 6, "registers": [12]}),
    # float32, word order little, scale 0.001: raw 10500.0 = 0x46241000 → words [0x1000, 0x4624]
    ("mb1", "VSET", 10.5, 10.5, "S1/T2/TX/Voltage", 10.5, {"function": 16, "registers": [0x1000, 0x4624]}),
    ("rtu1", "CB", CLOSED, 2.0, "S1/F2/CB/SwitchPosition", 2, {"name": "SUCCESS", "mode": "sbo"}),
    ("F1", "Pos", CLOSED, 2.0, "S1/F1/CB1/SwitchPosition", 2, {"ok": True, "mode": "sbo", "add_cause": None}),
    ("F1", "Pos", OPEN, 1.0, "S1/F1/CB1/SwitchPosition", 1, {"ok": True}),
]


async def test_commands_operate_all_three_protocols_and_the_change_is_published(mosquitto):
    async with lab(mosquitto.url, mosquitto.port) as L, Room(mosquitto.port, [f"{CMD}/+/result", MEAS], client_id="room") as room:
        for i, (dev, pt, value, state, topic, shown, detail) in enumerate(OPERATIONS):
            issued = time.time()
            t0 = time.monotonic()
            res = await room.send(L.mrid(dev, pt), request(f"op-{i}", value, issued=issued))
            t_result = time.monotonic()
            assert (res["status"], res["reason"], res["device"], res["point"], res["value"]) == ("done", None, dev, pt, value), res
            assert res["operator"] == "alice" and res["mRID"] == L.mrid(dev, pt)
            assert {k: res["detail"][k] for k in detail} == detail, res["detail"]
            m, t_meas = await _published(room, topic, shown, issued)
            assert L.state(dev, pt) == state  # the emulated device really moved
            assert m["quality"]["validity"] == "GOOD" and m["provenance"]["device"] == dev
            if dev == "mb1":
                # the Modbus read-back publishes the change without waiting for the next poll (every 2 s)
                assert t_meas - t_result < 1.0, f"{dev}/{pt} published {t_meas - t_result:.2f} s after the result"
            assert t_result - t0 < 3.0
        router = L.gw_router()
        assert router.stats["done"] == len(OPERATIONS) and sum(router.stats.values()) == len(OPERATIONS)
        mb = L.source("mb1")
        assert mb.counters["commands"] == 4 and mb.counters["commands_refused"] == 0
    assert "gridgate-gw-cmd 1 gridgate/v1/gw-cmd/cmd/+" in mosquitto.log_text()  # inbound profile: it did subscribe


async def test_refusals_through_all_three_protocols_touch_nothing(mosquitto):
    async with lab(mosquitto.url, mosquitto.port) as L, Room(mosquitto.port, [f"{CMD}/+/result"], client_id="room") as room:
        watched = [("mb1", "CB"), ("mb1", "TAP"), ("mb1", "TAP2"), ("mb1", "VSET"), ("mb1", "CB2"), ("rtu1", "CB"), ("F1", "Pos"),
                   ("F1", "Pos2")]
        before = {k: L.state(*k) for k in watched}
        old = time.time() - 60
        cases = [
            # (device, point, payload, status, reason, check of the detail)
            ("mb1", "TAP2", request("ne-1", 7), "rejected", "not_commandable", "command.enabled"),
            ("mb1", "CB", request("op-mb", CLOSED, operator="mallory"), "rejected", "operator_not_allowed", "'mallory'"),
            ("rtu1", "CB", request("op-dnp", CLOSED, operator="mallory"), "rejected", "operator_not_allowed", "'mallory'"),
            ("F1", "Pos", request("op-iec", CLOSED, operator="mallory"), "rejected", "operator_not_allowed", "'mallory'"),
            ("mb1", "CB", request("ex-mb", CLOSED, issued=old), "rejected", "expired", "ttl is 5 s"),
            ("rtu1", "CB", request("ex-dnp", CLOSED, issued=old), "rejected", "expired", "ttl is 5 s"),
            ("F1", "Pos", request("ex-iec", CLOSED, issued=old), "rejected", "expired", "ttl is 5 s"),
            # SBO select fails on the device: DNP3 select to a point the outstation does not have
            ("rtu1", "CB9", request("sel-dnp", CLOSED), "failed", "device_refused", {"name": "NOT_SUPPORTED", "status": 4, "detail": "select refused"}),
            # IEC 61850: the gateway operates directly an object the IED wants selected first
            ("F1", "Pos2", request("sel-iec", CLOSED), "failed", "device_refused", {"add_cause": "Object-not-selected", "add_cause_code": 18}),
            # Modbus: no select on the protocol, refused before anything is sent
            ("mb1", "CB2", request("sel-mb", CLOSED), "failed", "device_refused", {"status": "refused", "function": None}),
            # Modbus device error: the firmware refuses a write to a computed (sine) point → exception 02
            ("mb1", "F", request("exc-mb", 49.5), "failed", "device_refused",
             {"status": "device_error", "exception_code": 2, "exception_name": "illegal data address", "function": 6}),
            ("mb1", "V", request("ro-mb", 10.0), "failed", "device_refused", {"status": "refused", "function": None}),
            # one value rule for every protocol, before any driver: a breaker takes 1 or 2, nothing else
            ("mb1", "CB", request("map-mb", 3), "rejected", "bad_value", "SwitchPosition command is 1 (open), 2 (closed)"),
            ("rtu1", "CB", request("map-dnp", 3), "rejected", "bad_value", "SwitchPosition command is 1 (open), 2 (closed)"),
            ("F1", "Pos", request("map-iec", 3), "rejected", "bad_value", "SwitchPosition command is 1 (open), 2 (closed)"),
            ("F1", "Pos", request("str-iec", "2"), "rejected", "bad_request", "value"),
            ("mb1", "TAP", request("rng-mb", 40000), "failed", "device_refused", {"status": "refused", "function": None}),
        ]
        results = []
        for dev, pt, payload, *_ in cases:
            results.append(await room.send(L.mrid(dev, pt), payload))
        for (dev, pt, _, status, reason, check), res in zip(cases, results):
            assert (res["status"], res["reason"]) == (status, reason), (dev, pt, res)
            if isinstance(check, str):
                assert check in res["detail"], res
            else:
                assert {k: res["detail"][k] for k in check} == check, res
        by_id = {r["id"]: r for r in results}
        assert "read-only input table" in by_id["ro-mb"]["detail"]["reason"]
        assert "no select-before-operate" in by_id["sel-mb"]["detail"]["reason"]
        assert "outside int16" in by_id["rng-mb"]["detail"]["reason"]
        await asyncio.sleep(0.3)  # a few firmware ticks: nothing may have moved
        assert {k: L.state(*k) for k in watched} == before
        mb = L.source("mb1")
        assert dict(mb.counters["command_exceptions"]) == {2: 1} and mb.counters["commands_refused"] == 4
        assert L.emu.devices["F1"].server is not None and L.source("F1").connected and L.source("rtu1").connected
        # after all that, a good command still works on each protocol
        for i, (dev, pt) in enumerate([("mb1", "CB"), ("rtu1", "CB"), ("F1", "Pos")]):
            res = await room.send(L.mrid(dev, pt), request(f"after-{i}", CLOSED))
            assert res["status"] == "done", res
        await asyncio.sleep(0.2)
        assert (L.state("mb1", "CB"), L.state("rtu1", "CB"), L.state("F1", "Pos")) == (2.0, 2.0, 2.0)


MALFORMED = [
    (b"{not json", None, "not JSON"),
    (b"", None, "not JSON"),
    (b"\xff\xfe\x00garbage", None, "not JSON"),
    (b"[1, 2, 3]", None, "Input should be a valid dictionary"),
    (b"null", None, "Input should be a valid dictionary"),
    (json.dumps({"id": "m-1", "value": 2}).encode(), "m-1", "issued: Field required"),
    (json.dumps({"id": "m-2", "value": "closed", "operator": "alice", "issued": 0}).encode(), "m-2", "value"),
    (json.dumps({"id": "m-3", "value": 2, "operator": "alice", "issued": "yesterday"}).encode(), "m-3", "issued"),
    (json.dumps({"id": "m-4", "value": 2, "operator": "alice", "issued": "2026-11-22T16:00:00"}).encode(), "m-4", "time zone"),
    (json.dumps({"id": "m-5", "value": 2, "operator": "alice", "issued": 0, "mode": "direct"}).encode(), "m-5", "mode: Extra"),
    (json.dumps({"id": "x" * 500, "value": 2, "operator": "alice", "issued": 0}).encode(), "x" * 500, "id: String should have at most 64"),
    (json.dumps({"id": "m-6", "value": None, "operator": "", "issued": 0}).encode(), "m-6", "operator"),
]


async def test_malformed_payloads_get_an_error_result_and_nothing_crashes(mosquitto):
    async with lab(mosquitto.url, mosquitto.port) as L, Room(mosquitto.port, [f"{CMD}/+/result"], client_id="room") as room:
        cb = L.mrid("mb1", "CB")
        before = L.state("mb1", "CB")
        for payload, _, _ in MALFORMED:
            room.publish(f"{CMD}/{cb}", payload)
        topic = f"{CMD}/{cb}/result"
        assert await room.wait_for(lambda ms: len([m for m in ms if m.topic == topic]) == len(MALFORMED), 8), \
            [m.payload for m in room.messages]
        got = [json.loads(m.payload) for m in room.messages if m.topic == topic]
        # results come from independent tasks: match them to requests by id, the id-less ones by detail
        for payload, id_, why in MALFORMED:
            cands = [r for r in got if r["id"] == id_ and why in r["detail"]]
            assert cands, (payload[:40], why, got)
            assert all((r["status"], r["reason"]) == ("rejected", "bad_request") for r in cands)
        assert L.state("mb1", "CB") == before
        assert L.gw_router().stats["rejected:bad_request"] == len(MALFORMED)
        # the gateway is still alive and listening
        res = await room.send(cb, request("still-alive", CLOSED))
        assert res["status"] == "done"
        assert all(s.connected for s in L.gw.sources)


@pytest.mark.parametrize("inbound,commands", [(False, True), (True, False)], ids=["one-way-profile", "commands-off"])
async def test_without_inbound_the_gateway_subscribes_to_nothing(mosquitto, inbound, commands):
    async with lab(mosquitto.url, mosquitto.port, inbound=inbound, commands=commands) as L, \
            Room(mosquitto.port, [f"{CMD}/+/result", MEAS], client_id="room") as room:
        before = L.state("mb1", "CB")
        await room.wait_for(lambda ms: any("/meas/" in m.topic for m in ms), 5)  # the gateway publishes
        room.publish(f"{CMD}/{L.mrid('mb1', 'CB')}", request("c-1", CLOSED))
        room.publish(f"{CMD}/{L.mrid('rtu1', 'CB')}", request("c-2", CLOSED))
        await asyncio.sleep(1.0)
        assert not [m for m in room.messages if m.topic.startswith(CMD)]  # nobody answered
        assert L.state("mb1", "CB") == before and L.state("rtu1", "CB") == 1.0
        assert L.gw_router() is None
        log = mosquitto.log_text()
        assert "room 1 gridgate/v1/gw-cmd/cmd/+/result" in log  # the broker does log subscriptions ...
        assert "gridgate-gw-cmd" in log  # ... and saw the gateway connect ...
        assert not [ln for ln in log.splitlines() if ": gridgate-gw-cmd " in ln and "/" in ln.split()[-1]]  # ... subscribe: never
