"""Sparkplug B 3.0 rules that need no broker: one timestamp rule, small persisted aliases, bdSeq state."""

from __future__ import annotations

import random
import time
from datetime import datetime

from gateway.encoding import epoch_ms, iso_ms
from gateway.northbound.sparkplug import SparkplugNode
from tests.northbound import pbdecode


def _iso_to_ms(text: str) -> int:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(t.timestamp()) * 1000 + t.microsecond // 1000


def test_one_timestamp_rule_for_cim_and_sparkplug():
    rng = random.Random(20)
    node = SparkplugNode("g", "e", {"d": [("x", "Double")]})
    node.will()
    node.node_birth()
    # readings with sub-ms fractions, including .xxx5 and .xxx9996 that rounding and truncation split
    times = [1_790_000_000 + rng.random() * 1000 for _ in range(2000)]
    times += [1_790_000_000.0005, 1_790_000_000.0015, 1_790_000_000.9999996, 1_790_000_000.1239]
    split = 0
    for t in times:
        cim = _iso_to_ms(iso_ms(t))
        spb = pbdecode.payload(node.device_data("d", [("x", 1.0, 0, t)]).payload)["metrics"][0]["timestamp"]
        assert cim == spb == epoch_ms(t), (t, iso_ms(t), spb)
        split += int(round(t * 1000)) != cim  # where the old rounding path differed
    assert split > 500  # the sample does exercise the readings that used to differ by 1 ms


def test_aliases_small_persisted_and_stable_across_restarts_and_config_edits(tmp_path):
    from gateway.northbound.sparkplug_state import SparkplugState

    path = tmp_path / "sparkplug.json"
    first = SparkplugState(path).assign(["m/b", "m/a", "r/x"])
    assert sorted(first.values()) == [1, 2, 3]
    # restart with an edited config: one point removed, two added, order changed
    st = SparkplugState(path)
    again = st.assign(["r/x", "n/new", "m/a", "m/zz"])
    assert again["r/x"] == first["r/x"] and again["m/a"] == first["m/a"]  # untouched points keep their alias
    assert {again["n/new"], again["m/zz"]} == {4, 5}  # new points: next free integers, m/b's 1..3 not reused
    st3 = SparkplugState(path)
    assert st3.assign(["m/b"]) == {"m/b": first["m/b"]}  # a removed point that comes back gets its old alias
    node = SparkplugNode("g", "e", {"m": [("a", "Double"), ("zz", "Double")]}, aliases=st3.assign(["m/a", "m/zz"]))
    assert node.metrics["m"]["a"].alias == first["m/a"]


def test_bdseq_advances_per_session_and_survives_restarts(tmp_path):
    from gateway.northbound.sparkplug_state import SparkplugState

    path = tmp_path / "sp.json"
    st = SparkplugState(path)
    node = SparkplugNode("g", "e", {}, on_session=st.new_session)
    deaths = [pbdecode.payload(node.will().payload)["metrics"][0]["value"] for _ in range(3)]
    assert deaths == [0, 1, 2]
    node2 = SparkplugNode("g", "e", {}, on_session=SparkplugState(path).new_session)  # process restart
    assert pbdecode.payload(node2.will().payload)["metrics"][0]["value"] == 3
    assert pbdecode.payload(node2.node_birth().payload)["metrics"][0]["value"] == 3
    st.bd_seq = 255
    assert st.new_session() == 0  # wraps like seq


def test_bad_state_file_names_file_and_fix(tmp_path):
    import pytest

    from gateway.northbound.sparkplug_state import SparkplugState, SparkplugStateError

    path = tmp_path / "sp.json"
    for text in ("{not json", '{"bdSeq": 300, "aliases": {}, "nextAlias": 1}',
                 '{"bdSeq": 1, "aliases": {"a": 1, "b": 1}, "nextAlias": 2}', '{"bdSeq": 1, "aliases": {"a": 5}, "nextAlias": 2}'):
        path.write_text(text)
        with pytest.raises(SparkplugStateError, match=f"{path}.*delete it"):
            SparkplugState(path)


def test_state_payloads_parsed_strictly():
    import pytest

    from gateway.northbound.sparkplug_bridge import _parse_state

    assert _parse_state(b'{"online": true, "timestamp": 1790000000000}') == (True, 1790000000000)
    assert _parse_state(b'{"online": false}') == (False, None)
    assert _parse_state(b"OFFLINE") == (False, None)  # Sparkplug 2.x hosts
    for bad, why in ((b"online", "not JSON"), (b'{"online": "yes"}', "expected"), (b"[true]", "expected"),
                     (b'{"online": true, "timestamp": "now"}', "epoch milliseconds")):
        with pytest.raises(ValueError, match=why):
            _parse_state(bad)


def test_command_payloads_decoded_and_malformed_ones_named():
    import pytest

    from gateway.northbound.sparkplug import command_metrics

    ts, metrics = command_metrics(pbdecode.command(1_790_000_000_123, [
        {"name": "T1/CB/SwitchPosition", "datatype": 3, "value": 1, "properties": {"Operator": "alice", "Id": "r-1"}},
        {"alias": 7, "datatype": 3, "value": -5, "timestamp": 1_790_000_000_000}]))
    assert ts == 1_790_000_000_123
    assert (metrics[0].name, metrics[0].value, metrics[0].properties) == ("T1/CB/SwitchPosition", 1,
                                                                          {"Operator": "alice", "Id": "r-1"})
    assert (metrics[1].alias, metrics[1].value, metrics[1].timestamp_ms) == (7, -5, 1_790_000_000_000)
    for bad in (b"\x12\x10\x0a", b"\x12\x02\x08", b"\x0f", b"\x12\x03\x0a\x01\xff"):
        with pytest.raises(ValueError, match="not a valid Sparkplug B protobuf"):
            command_metrics(bad)


async def test_signed_sites_refuse_sparkplug_commands():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.northbound.commands import CommandPoint, CommandRouter

    point = CommandPoint("m-1", "rtu1", "CB", "Discrete", operators=("scada",), measurement_type="SwitchPosition")
    published: list = []
    router = CommandRouter("gridgate/v1", "gw1", [point], {}, lambda *a: published.append(a), allowed=True,
                           keys={"scada": Ed25519PrivateKey.generate().public_key()})
    got: list[dict] = []
    res = await router.execute("m-1", {"id": "x", "value": 1, "operator": "scada", "issued": 1.0}, got.append)
    assert (res["status"], res["reason"]) == ("rejected", "bad_signature") and got == [res] and published == []
    router.keys = {}
    res = await router.execute("m-1", {"id": "y", "value": None, "operator": "scada", "issued": 1.0}, got.append)
    assert res["reason"] == "bad_request" and len(got) == 2  # a null value: refused with its reason, one result


def test_held_readings_survive_a_restart_in_their_spool_and_leave_as_historical(tmp_path):
    from gateway.northbound.message import Message
    from gateway.northbound.sparkplug_outbox import SparkplugOutbox, reading
    from gateway.northbound.spool import Spool

    def outbox(node: SparkplugNode, ready: list[bool]) -> SparkplugOutbox:
        return SparkplugOutbox(100, lambda d, n, v, f, t, h: node.device_data(d, [(n, v, f, t)], historical=h),
                               lambda: ready[0], lambda: node.bd_seq, Spool(tmp_path / "spb.db"))

    node, ready = SparkplugNode("g", "e", {"d": [("x", "Double")]}), [False]
    node.will()
    box = outbox(node, ready)
    assert box.durable and hasattr(box, "flush")
    t0 = 1_790_000_000.25
    for i in range(3):  # held: no births yet
        box.put(Message("spBv1.0/g/DDATA/e/d", reading("d", "x", float(i), 0, t0 + i, False, node.bd_seq)))
    assert box.take() is None and len(box) == 0 and box.backlog() == 3
    box.flush()
    box.close()

    node2, ready2 = SparkplugNode("g", "e", {"d": [("x", "Double")]}, bd_seq=node.bd_seq), [True]
    node2.will()
    node2.node_birth()
    box2 = outbox(node2, ready2)  # the next process: its own session
    out = []
    while (item := box2.take()) is not None:
        out.append(pbdecode.payload(item[1].payload))
        box2.done(item[0])
    assert [(p["seq"], p["metrics"][0]["value"], p["metrics"][0]["timestamp"], p["metrics"][0].get("is_historical"))
            for p in out] == [(1 + i, float(i), epoch_ms(t0 + i), True) for i in range(3)]
    box2.flush()
    box2.close()


def test_memory_backlog_is_bounded_held_until_ready_and_rewound_in_order():
    from gateway.northbound.sparkplug_outbox import SparkplugOutbox

    node, ready, woken = SparkplugNode("g", "e", {"d": [("x", "Double")]}), [False], []
    node.will()
    box = SparkplugOutbox(3, lambda d, n, v, f, t, h: node.device_data(d, [(n, v, f, t)], historical=h),
                          lambda: ready[0], lambda: node.bd_seq)
    box.on_append = lambda: woken.append(1)
    assert box.oldest_born() is None
    before = time.time()
    assert [box.add(("d", "x", float(i), 0, 10.0 + i, i == 1, node.bd_seq)) for i in range(4)] == [True] * 3 + [False]
    assert len(woken) == 3 and box.take() is None and len(box) == 0 and box.backlog() == 3  # held: nothing out
    held_since = box.oldest_born()  # when the first reading came (not its timestamp): the publisher's queued age
    assert held_since is not None and before <= held_since <= time.time()
    ready[0] = True
    node.node_birth()
    first = box.take()
    assert box.oldest_born() == held_since  # in flight, still waiting
    assert first is not None and box.rewind() == 1  # a lost connection: the taken one goes back in front
    got = []
    while (item := box.take()) is not None:
        m = pbdecode.payload(item[1].payload)["metrics"][0]
        got.append((m["value"], bool(m.get("is_historical"))))
        box.done(item[0])
    assert got == [(0.0, True), (1.0, False), (2.0, True)]  # only the one that came live is sent as live
    assert box.historical == 3  # the rewound first one was counted when first taken, and again
    assert box.oldest_born() is None  # all delivered
