"""The demo's zero-setup broker: amqtt in-process, loopback only, MQTT 3.1.1.

Only for `gridgate demo` without `--broker`; real use and the tests run Mosquitto.
The plugin list is explicit so amqtt's entry-point defaults ($SYS publisher, packet
logger) cannot change behaviour behind our back.
"""

from __future__ import annotations

import logging

PLUGINS = {
    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
}


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> "EmbeddedBroker":
        from amqtt.broker import Broker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(
            {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}, "plugins": dict(PLUGINS)}
        )
        await self._broker.start()
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
