"""Sparkplug B: payloads decoded by an independent decoder, session rules through real Mosquitto."""

from __future__ import annotations

import math

import pytest

from gateway.northbound.mqtt import MqttPublisher
from gateway.northbound.sparkplug import (
    BOOLEAN,
    DOUBLE,
    INT32,
    INT64,
    SparkplugNode,
    is_rebirth_request,
    quality_code,
)
from gateway.site.quality import COMMS_LOST, Q
from tests.northbound import pbdecode
from tests.northbound.rawsub import RawSubscriber

CATALOGUE = {
    "F1-relay": [("Ia", "Double"), ("CB1.Pos", "Int32"), ("Trip", "Boolean")],
    "pq-meter": [("Freq", "Float"), ("Energy", "Int64"), ("Id", "String")],
}


def _node() -> SparkplugNode:
    return SparkplugNode("gridgate", "gw1", CATALOGUE)


def test_birth_data_death_payloads_and_seq_rules():
    node = _node()
    death = pbdecode.payload(node.will().payload)
    assert node.will().topic == "spBv1.0/gridgate/NDEATH/gw1"
    assert "seq" not in death and death["metrics"][0]["name"] == "bdSeq"
    nb_msg = node.node_birth()
    nb = pbdecode.payload(nb_msg.payload)
    assert nb_msg.topic == "spBv1.0/gridgate/NBIRTH/gw1" and nb["seq"] == 0
    assert {m["name"]: (m["datatype"], m["value"]) for m in nb["metrics"]} == {
        "bdSeq": (INT64, 1), "Node Control/Rebirth": (BOOLEAN, False)}  # two will() calls above → bdSeq 1

    t = 1_790_000_000.125
    db_msg = node.device_birth("F1-relay", {"Ia": (412.5, 0, t), "CB1.Pos": (2, int(Q.OLD_DATA), t)})
    db = pbdecode.payload(db_msg.payload)
    assert db_msg.topic == "spBv1.0/gridgate/DBIRTH/gw1/F1-relay" and db["seq"] == 1
    by_name = {m["name"]: m for m in db["metrics"]}
    assert by_name["Ia"]["datatype"] == DOUBLE and by_name["Ia"]["value"] == 412.5
    assert by_name["Ia"]["timestamp"] == 1_790_000_000_125
    assert by_name["Ia"]["alias"] == node.metrics["F1-relay"]["Ia"].alias < 2 ** 53
    assert by_name["Ia"]["properties"] == {"Quality": {"type": INT32, "value": 192}}
    assert by_name["CB1.Pos"]["properties"]["Quality"]["value"] == 500  # old data → stale
    assert by_name["Trip"].get("is_null") and by_name["Trip"]["properties"]["Quality"]["value"] == 0  # never read → bad

    dd = pbdecode.payload(node.device_data("F1-relay", [("Ia", 413.0, 0, t), ("Trip", True, int(COMMS_LOST), t)]).payload)
    assert dd["seq"] == 2
    for m in dd["metrics"]:
        assert "name" not in m and "datatype" not in m  # names and datatypes only at birth
    assert [(m["alias"], m["value"], m["properties"]["Quality"]["value"]) for m in dd["metrics"]] == [
        (node.metrics["F1-relay"]["Ia"].alias, 413.0, 192), (node.metrics["F1-relay"]["Trip"].alias, True, 0)]

    pq = pbdecode.payload(node.device_birth("pq-meter", {"Freq": (49.98, 0, t), "Energy": (-5, 0, t), "Id": ("PQ-7", 0, t)}).payload)
    vals = {m["name"]: m["value"] for m in pq["metrics"]}
    assert math.isclose(vals["Freq"], 49.98, rel_tol=1e-6) and vals["Energy"] == -5 and vals["Id"] == "PQ-7"
    assert pbdecode.payload(node.device_death("pq-meter").payload)["seq"] == 4
    for _ in range(300):
        node.device_data("pq-meter", [("Freq", 50.0, 0, t)])
    assert node.seq == (5 + 300) % 256  # wraps at 256


def test_aliases_small_stable_across_catalogue_order_and_errors_named():
    a = SparkplugNode("g", "e", CATALOGUE)
    b = SparkplugNode("g", "e", dict(reversed([(d, list(reversed(m))) for d, m in CATALOGUE.items()])))
    assert {(d, n): x.alias for d, ms in a.metrics.items() for n, x in ms.items()} == \
           {(d, n): x.alias for d, ms in b.metrics.items() for n, x in ms.items()}
    assert sorted(x.alias for ms in a.metrics.values() for x in ms.values()) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="datatype 'Decimal'"):
        SparkplugNode("g", "e", {"d": [("x", "Decimal")]})
    with pytest.raises(ValueError, match="edge node id 'gw/1'"):
        SparkplugNode("g", "gw/1", {})
    with pytest.raises(KeyError, match="no metric 'Ib'"):
        a.device_data("F1-relay", [("Ib", 1.0, 0, 0.0)])
    with pytest.raises(RuntimeError, match="before will"):
        SparkplugNode("g", "e", {}).node_birth()


def test_quality_convention():
    assert quality_code(0) == 192
    assert quality_code(int(Q.INVALID)) == 0 and quality_code(int(COMMS_LOST)) == 0
    assert quality_code(int(Q.OLD_DATA)) == 500 and quality_code(int(Q.QUESTIONABLE)) == 500


def test_rebirth_request_detection():
    assert is_rebirth_request(pbdecode.ncmd_rebirth())
    node = _node()
    node.will()
    assert not is_rebirth_request(node.node_birth().payload)  # Rebirth metric present but false
    with pytest.raises(ValueError, match="not a valid Sparkplug B protobuf"):
        is_rebirth_request(b"\x12\x10\x0a")


async def test_session_over_mosquitto_birth_rebirth_death(mosquitto):
    node = _node()
    t = 1_790_000_000.0

    def births():
        pub.publish(*_args(node.node_birth()))
        for device in CATALOGUE:
            pub.publish(*_args(node.device_birth(device, {})))

    def on_ncmd(topic, payload):
        if is_rebirth_request(payload):
            births()

    async with RawSubscriber(mosquitto.port, ["spBv1.0/#"], client_id="primary-host") as host:
        pub = MqttPublisher(mosquitto.url, "gw1-sparkplug", will=node.will, on_connect=births)
        pub.subscribe(node.topic("NCMD"), on_ncmd)
        await pub.start()
        assert await host.wait_for(lambda m: len(m) == 3, 5)
        pub.publish(*_args(node.device_data("F1-relay", [("Ia", 99.5, 0, t)])))
        assert await host.wait_for(lambda m: len(m) == 4, 5)
        decoded = [(m.topic.split("/")[2], pbdecode.payload(m.payload)) for m in host.messages]
        assert [(k, p["seq"]) for k, p in decoded] == [("NBIRTH", 0), ("DBIRTH", 1), ("DBIRTH", 2), ("DDATA", 3)]
        assert decoded[0][1]["metrics"][0] == {"name": "bdSeq", "timestamp": decoded[0][1]["metrics"][0]["timestamp"],
                                               "datatype": INT64, "value": 0}

        host.publish(node.topic("NCMD"), pbdecode.ncmd_rebirth())  # primary host asks for a rebirth
        assert await host.wait_for(lambda m: len(m) == 8, 5), [x.topic for x in host.messages]
        assert host.messages[4].topic == node.topic("NCMD")
        assert [(m.topic.split("/")[2], pbdecode.payload(m.payload)["seq"]) for m in host.messages[5:]] == [
            ("NBIRTH", 0), ("DBIRTH", 1), ("DBIRTH", 2)]

        pub._client._connection._transport.abort()  # the link dies uncleanly: the broker sends our NDEATH
        assert await host.wait_for(lambda m: any("NDEATH" in x.topic for x in m), 5)
        death = next(x for x in host.messages if "NDEATH" in x.topic)
        assert pbdecode.payload(death.payload)["metrics"][0]["value"] == 0  # bdSeq of the session that died
        # reconnect: a new session, bdSeq 1 in both the new will and the NBIRTH
        assert await host.wait_for(lambda m: [x for x in m if "NBIRTH" in x.topic][2:], 10)
        nbirth = [x for x in host.messages if "NBIRTH" in x.topic][2]
        metrics = pbdecode.payload(nbirth.payload)["metrics"]
        assert metrics[0]["name"] == "bdSeq" and metrics[0]["value"] == 1
        await pub.stop()


def _args(msg):
    return msg.topic, msg.payload, msg.qos, msg.retain
