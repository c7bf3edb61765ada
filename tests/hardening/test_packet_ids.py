"""One owner of MQTT packet ids (issue 14): a full QoS 1 window plus SUBSCRIBEs on one connection
crashed the publisher with gmqtt's ``OverflowError: All ids has already used``."""

from __future__ import annotations

import asyncio

from gateway.northbound.gmqtt_adapter import PacketIds
from gateway.northbound.mqtt import MqttPublisher
from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import Mosquitto


def test_packet_ids_use_the_whole_range_and_ignore_receive_maximum():
    ids = PacketIds()
    ids._max = 20  # what gmqtt does on CONNACK: must not shrink the id space
    got = [ids.next_id() for _ in range(100)]
    assert got == list(range(1, 101)) and len(ids) == 100
    ids.free_id(7)
    ids.free_id(7)  # twice: harmless
    ids._last = PacketIds.LIMIT - 1
    assert [ids.next_id(), ids.next_id(), ids.next_id()] == [PacketIds.LIMIT, 7, 101]  # wraps, skips ids in use


async def test_full_qos1_window_with_subscriptions_on_a_small_receive_maximum():
    """Mosquitto with Receive Maximum 5: the publisher's window is 4 QoS 1 PUBLISHes; SUBSCRIBEs on
    every (re)connect and while sending must find ids too, and every value must arrive."""
    with Mosquitto(extra="max_inflight_messages 5\n") as broker:
        pub = MqttPublisher(broker.url, "gw-ids")
        for i in range(5):
            pub.subscribe(f"gg/ids/cmd{i}/+", lambda t, p: None)
        await pub.start()
        async with RawSubscriber(broker.port, ["gg/ids/v"], client_id="room") as room:
            for n in range(2000):
                pub.publish("gg/ids/v", b"%d" % n, qos=1)
                if n % 200 == 0:
                    pub.subscribe(f"gg/ids/late{n}/+", lambda t, p: None)  # SUBSCRIBE while the window is full
                    await asyncio.sleep(0)
            assert await pub.drain(60)
            assert await room.wait_for(lambda m: len({x.payload for x in m}) == 2000, 30)
        assert pub.connected and pub.stats.acked == 2000 and pub.stats.dropped == {}
        await pub.stop()
