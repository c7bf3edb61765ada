import asyncio
import logging

import pytest

from tests.support.mosquitto import free_port


@pytest.fixture
async def amqtt_broker():
    """The embedded amqtt broker (MQTT 3.1.1 only) on a free 127.0.0.1 port; yields the port."""
    from amqtt.broker import Broker

    logging.getLogger("amqtt").setLevel(logging.WARNING)
    port = free_port()
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    yield port
    await asyncio.wait_for(broker.shutdown(), 10)
