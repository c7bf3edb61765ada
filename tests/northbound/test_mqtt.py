"""MqttPublisher against real Mosquitto (MQTT 5) and the embedded amqtt broker (3.1.1)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.northbound.message import Message
from gateway.northbound.mqtt import MqttPublisher, NorthboundConfigError
from gateway.pipeline import Backoff
from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
STATUS = "gridgate/v1/gw1/status"
ONLINE = json.dumps({"state": "online"}).encode()
OFFLINE = json.dumps({"state": "offline"}).encode()


def _pub(url: str, **kw) -> MqttPublisher:
    kw.setdefault("will", Message(STATUS, OFFLINE, qos=1, retain=True))
    return MqttPublisher(url, kw.pop("client_id", "gw1"), **kw)


async def test_values_arrive_with_qos_and_retain(mosquitto):
    async with RawSubscriber(mosquitto.port, ["gg/#"]) as live:
        pub = _pub(mosquitto.url)
        await pub.start()
        assert pub.connected
        for i in range(100):
            assert pub.publish(f"gg/a/{i % 5}", f"{i}".encode(), qos=i % 2)
        assert pub.publish("gg/state", b"kept", qos=1, retain=True)
        assert pub.publish("gg/plain", b"not kept", qos=0, retain=False)
        assert await pub.drain(5)
        assert await live.wait_for(lambda m: len(m) == 102, 5), len(live.messages)
        values = [m for m in live.messages if m.topic.startswith("gg/a/")]
        # none lost, in order per QoS level (MQTT orders per topic and QoS, not across QoS levels)
        for q in (0, 1):
            assert [int(m.payload) for m in values if m.qos == q] == list(range(q, 100, 2))
        assert not any(m.retain for m in live.messages)  # live delivery clears retain
        st = pub.stats
        assert (st.published, st.acked, st.inflight, st.queued, sum(st.dropped.values())) == (102, 51, 0, 0, 0)
        await pub.stop()
    async with RawSubscriber(mosquitto.port, ["gg/#"], client_id="late") as late:
        assert await late.wait_for(lambda m: len(m) >= 1, 3)
        await asyncio.sleep(0.2)
        assert [(m.topic, m.payload, m.retain, m.qos) for m in late.messages] == [("gg/state", b"kept", True, 1)]


async def test_online_on_connect_offline_on_clean_stop(mosquitto):
    async with RawSubscriber(mosquitto.port, [STATUS]) as sub:
        connects = []

        def online():
            connects.append(1)
            pub.publish(STATUS, ONLINE, qos=1, retain=True)

        pub = _pub(mosquitto.url, on_connect=online)
        await pub.start()
        assert await sub.wait_for(lambda m: len(m) == 1, 5)
        assert sub.messages[0].payload == ONLINE and connects == [1]
        await pub.stop(Message(STATUS, OFFLINE, qos=1, retain=True))
        assert await sub.wait_for(lambda m: len(m) == 2, 5)
        assert sub.messages[1].payload == OFFLINE
        await asyncio.sleep(0.3)
        assert len(sub.messages) == 2  # a clean DISCONNECT must not also fire the will
    async with RawSubscriber(mosquitto.port, [STATUS], client_id="late") as late:
        assert await late.wait_for(lambda m: len(m) == 1, 3)
        assert late.messages[0].payload == OFFLINE and late.messages[0].retain


CHILD = textwrap.dedent("""
    import asyncio, sys
    from gateway.northbound.message import Message
    from gateway.northbound.mqtt import MqttPublisher
    async def main():
        pub = MqttPublisher(sys.argv[1], "gw-child", will=Message("gridgate/v1/gw1/status", b"offline", 1, True),
                            protocol=sys.argv[2], on_connect=lambda: pub.publish("gridgate/v1/gw1/status", b"online", 1, True))
        await pub.start()
        assert await pub.drain(5)
        print("up", flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
""")


async def _will_fires_on_kill(port: int, url: str, protocol: str) -> None:
    async with RawSubscriber(port, [STATUS]) as sub:
        child = subprocess.Popen([sys.executable, "-c", CHILD, url, protocol], stdout=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 15)
            assert line.strip() == b"up"
            assert await sub.wait_for(lambda m: [x.payload for x in m] == [b"online"], 5)
            os.kill(child.pid, signal.SIGKILL)
            assert await sub.wait_for(lambda m: len(m) == 2, 5), sub.messages
            assert sub.messages[1].payload == b"offline"
        finally:
            child.kill()
            child.wait(5)


async def test_last_will_on_process_kill_mosquitto(mosquitto):
    await _will_fires_on_kill(mosquitto.port, mosquitto.url, "5")


async def test_last_will_on_process_kill_amqtt(amqtt_broker):
    await _will_fires_on_kill(amqtt_broker, f"mqtt://127.0.0.1:{amqtt_broker}", "3.1.1")


async def test_amqtt_3_1_1_qos_and_retain(amqtt_broker):
    async with RawSubscriber(amqtt_broker, ["gg/#"]) as live:
        pub = _pub(f"mqtt://127.0.0.1:{amqtt_broker}", protocol="3.1.1")
        await pub.start()
        assert pub.connected
        for i in range(50):
            pub.publish("gg/v", str(i).encode(), qos=1)
        pub.publish("gg/state", b"kept", qos=1, retain=True)
        assert await pub.drain(5)
        assert await live.wait_for(lambda m: len(m) == 51, 5), len(live.messages)
        assert [int(m.payload) for m in live.on("gg/v")] == list(range(50))
        assert pub.stats.acked == 51
        await pub.stop()
    async with RawSubscriber(amqtt_broker, ["gg/#"], client_id="late") as late:
        assert await late.wait_for(lambda m: len(m) == 1, 3)
        assert (late.messages[0].payload, late.messages[0].retain) == (b"kept", True)


async def test_broker_outage_queues_counts_overflow_and_reconnects():
    size, extra = 300, 7
    with Mosquitto(persistence=True, extra="max_queued_messages 0\n") as broker:
        # a persistent subscriber session: the broker keeps what arrives while it reconnects
        async with RawSubscriber(broker.port, ["gg/#"], client_id="hist", clean=False) as sub:
            pub = _pub(broker.url, queue_size=size, backoff=Backoff(initial=0.2, maximum=0.5))
            await pub.start()
            for i in range(10):
                pub.publish("gg/v", str(i).encode(), qos=1)
            assert await pub.drain(5)
            assert await sub.wait_for(lambda m: len(m) == 10, 5)
        broker.stop()
        await asyncio.sleep(0.5)
        assert not pub.connected
        accepted = [pub.publish("gg/v", str(10 + i).encode(), qos=1) for i in range(size + extra)]
        assert accepted == [True] * size + [False] * extra
        assert pub.stats.dropped["queue_full"] == extra and pub.stats.queued == size
        await asyncio.sleep(1.5)  # a few seconds of outage, with failed reconnects
        assert pub.stats.connect_failures >= 1
        broker.start()
        async with RawSubscriber(broker.port, ["gg/#"], client_id="hist", clean=False) as sub:
            assert await pub.drain(10)
            assert pub.connected and pub.stats.reconnects == 1
            assert await sub.wait_for(lambda m: len(m) >= size, 10), len(sub.messages)
            assert [int(m.payload) for m in sub.messages] == list(range(10, 10 + size))
        await pub.stop()


async def test_backpressure_caps_inflight(mosquitto):
    n = 5000
    async with RawSubscriber(mosquitto.port, ["gg/#"]) as sub:
        pub = _pub(mosquitto.url, max_inflight=50, queue_size=n)
        await pub.start()
        peak = 0

        async def watch():
            nonlocal peak
            while True:
                peak = max(peak, pub.stats.inflight)
                await asyncio.sleep(0)

        w = asyncio.create_task(watch())
        for i in range(n):
            assert pub.publish("gg/v", b"x" * 300, qos=1)
        assert await pub.drain(20)
        w.cancel()
        assert 1 < peak <= 50
        assert await sub.wait_for(lambda m: len(m) == n, 10)
        assert pub.stats.acked == n
        await pub.stop()


def test_bad_settings_are_named():
    with pytest.raises(NorthboundConfigError, match="mqtt://host:port"):
        MqttPublisher("tcp://127.0.0.1:1883", "gw1")
    with pytest.raises(NorthboundConfigError, match="requires TLS"):
        MqttPublisher("mqtt://127.0.0.1:1883", "gw1", require_tls=True)
    with pytest.raises(NorthboundConfigError, match="credentials"):
        MqttPublisher("mqtt://u:secret@127.0.0.1:1883", "gw1")
    with pytest.raises(NorthboundConfigError, match="protocol"):
        MqttPublisher("mqtt://127.0.0.1:1883", "gw1", protocol="3")


async def test_mqtt5_falls_back_to_3_1_1_on_amqtt(amqtt_broker, caplog):
    async with RawSubscriber(amqtt_broker, ["gg/#"]) as live:
        # amqtt answers an MQTT 5 CONNECT with CONNACK 0x01 — unless it carries a will, which it
        # cannot parse and never answers: with a will, configure protocol "3.1.1" for amqtt
        pub = _pub(f"mqtt://127.0.0.1:{amqtt_broker}", protocol="5", will=None)
        await pub.start()
        assert pub.connected and pub.protocol == "3.1.1"
        assert "does not speak MQTT 5; falling back to MQTT 3.1.1" in caplog.text
        pub.publish("gg/v", b"1", qos=1)
        assert await live.wait_for(lambda m: len(m) == 1, 5)
        await pub.stop()


async def test_mqtt5_message_expiry_drops_stale_retained_value(mosquitto):
    pub = _pub(mosquitto.url)
    await pub.start()
    pub.publish("gg/stale", b"old", qos=1, retain=True, expiry=1)
    pub.publish("gg/fresh", b"new", qos=1, retain=True)
    assert await pub.drain(5)
    await asyncio.sleep(2.1)
    async with RawSubscriber(mosquitto.port, ["gg/#"], client_id="late") as late:
        assert await late.wait_for(lambda m: len(m) >= 1, 3)
        await asyncio.sleep(0.2)
        assert [m.topic for m in late.messages] == ["gg/fresh"]  # the expired analog is not served
    await pub.stop()


async def test_stop_while_unreachable_counts_what_is_lost():
    from tests.support.mosquitto import free_port

    pub = _pub(f"mqtt://127.0.0.1:{free_port()}", connect_timeout=1, backoff=Backoff(initial=0.1, maximum=0.2))
    await pub.start()
    assert not pub.connected and "Connect call failed" in pub.stats.last_error
    for i in range(5):
        pub.publish("gg/v", b"%d" % i, qos=1)
    await pub.stop(Message(STATUS, OFFLINE, 1, True))
    assert pub.stats.dropped == {"final_not_sent": 1, "undelivered_at_stop": 5}


async def test_values_overtake_a_catalog_feed_that_fills_the_window():
    """A birth's catalog (QoS 1) at a broker's small Receive Maximum must not hold values (QoS 0) back;
    nothing is lost, the catalog and the values each stay in order, and a QoS 1 value waits its turn."""
    with Mosquitto(extra="max_inflight_messages 2\n") as broker:  # Receive Maximum 2: one QoS 1 message in flight
        async with RawSubscriber(broker.port, ["gg/#"]) as live:
            n_cat = 1500
            pub = _pub(broker.url, on_connect=lambda: pub.publish_feed(
                Message(f"gg/cat/{i}", b"m", qos=1, retain=True) for i in range(n_cat)))
            await pub.start()
            assert pub.connected
            for i in range(200):
                assert pub.publish(f"gg/val/{i % 7}", str(i).encode(), qos=1 if i == 100 else 0, kind="analog")
            assert await pub.drain(60)
            assert await live.wait_for(lambda m: len(m) == n_cat + 200, 20), len(live.messages)
            order = [m.topic.split("/")[1] for m in live.messages]
            cat = [int(m.topic.rsplit("/", 1)[1]) for m in live.messages if m.topic.startswith("gg/cat/")]
            vals = [(m.qos, int(m.payload)) for m in live.messages if m.topic.startswith("gg/val/")]
            assert cat == list(range(n_cat))
            # in order per QoS level (the broker's own window to us may hold a QoS 1 message behind QoS 0 ones)
            assert [v for q, v in vals if q == 0] == [i for i in range(200) if i != 100] and (1, 100) in vals
            assert order.index("val") < len(order) - n_cat // 2, "values waited for the catalog"
            await pub.stop()


async def test_publish_many_queues_in_order_counts_overflow_and_latency(mosquitto):
    """A batch of values (the normaliser's path): what fits is queued in order, the rest counted as queue_full;
    once connected each value arrives once, in order, and each QoS 0 and QoS 1 value is one latency observation."""
    from gateway.northbound.message import ValueMessage

    size, extra = 250, 9
    pub = _pub("mqtt://127.0.0.1:1", queue_size=size, backoff=Backoff(initial=5, maximum=5))  # nobody listens on :1
    await pub.start()
    assert not pub.connected
    batch = [ValueMessage(f"gg/v/{i % 3}", str(i).encode(), i % 5 == 0, False, None, kind="analog", seq=i)
             for i in range(size + extra)]
    assert pub.publish_many(batch[:100]) == 100
    assert pub.publish_many(batch[100:]) == size - 100
    assert pub.stats.dropped["queue_full"] == extra and pub.stats.queued == size
    assert all(m.born > 0 for m in batch[:size]) and pub.oldest_queued_age() >= 0
    await pub.stop()
    async with RawSubscriber(mosquitto.port, ["gg/#"]) as live:
        pub = _pub(mosquitto.url, queue_size=size)
        await pub.start()
        assert pub.publish_many(batch[:120]) == 120
        await asyncio.sleep(0.05)
        assert pub.publish_many(batch[120:size]) == size - 120
        assert await pub.drain(5)
        assert await live.wait_for(lambda m: len(m) == size, 5), len(live.messages)
        for q in (0, 1):  # MQTT orders per QoS level
            assert [int(m.payload) for m in live.messages if m.qos == q] == [i for i in range(size) if (i % 5 == 0) == q]
        assert pub.latency.count == size and 0 <= pub.latency.sum < size * 5.0
        hist = pub.latency.as_dict()
        assert hist["+Inf"] == size and hist["count"] == size
        await pub.stop()


def test_histogram_observe_n_is_n_observations() -> None:
    from gateway.histogram import LATENCY_BUCKETS, Buckets

    one, many = Buckets(LATENCY_BUCKETS), Buckets(LATENCY_BUCKETS)
    for v, n in ((0.0004, 3), (0.003, 1), (0.7, 125), (-1.0, 2), (1000.0, 4), (0.01, 6)):
        for _ in range(n):
            one.observe(v)
        many.observe_n(v, n)
    assert one.cumulative() == many.cumulative() and one.count == many.count == 141
    assert abs(one.sum - many.sum) < 1e-9 and one.as_dict() == many.as_dict()


def test_memory_outbox_pop_qos0_is_take_and_done_of_a_qos0_head() -> None:
    from gateway.northbound.outbox import MemoryOutbox

    box = MemoryOutbox(10)
    msgs = [Message(f"t/{i}", b"x", qos=q) for i, q in enumerate((0, 0, 1, 0))]
    assert box.put_many(msgs, 1.0) == 4 and len(box) == 4
    assert box.pop_qos0() is msgs[0] and box.pop_qos0() is msgs[1] and len(box) == 2
    assert box.pop_qos0() is None  # a QoS 1 head stays for take(): it must be acknowledged
    ref, m = box.take()
    assert m is msgs[2] and box.pop_qos0() is msgs[3] and box.pop_qos0() is None
    assert box.rewind() == 1 and box.take()[1] is msgs[2]  # only the unacknowledged one comes back
    full = MemoryOutbox(3)
    assert full.put_many(msgs, 1.0) == 3 and full.put_many(msgs, 2.0) == 0 and len(full) == 3
    assert all(m.born == 1.0 for m in msgs[:3])  # the batch carries its born time (latency, oldest queued age)
