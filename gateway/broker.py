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
    def __init__(self, host: str = "127.0.0.1", port: int = 1883, ws_port: int | None = None) -> None:
        self.host, self.port, self.ws_port = host, port, ws_port
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str | None:
        """MQTT over WebSockets (for the browser mimic), when a ``ws_port`` was given."""
        return None if self.ws_port is None else f"ws://{self.host}:{self.ws_port}"

    async def start(self) -> "EmbeddedBroker":
        from amqtt.broker import Broker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        listeners = {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}
        if self.ws_port is not None:
            listeners["ws"] = {"type": "ws", "bind": f"{self.host}:{self.ws_port}"}
        self._broker = Broker({"listeners": listeners, "plugins": dict(PLUGINS)})
        await self._broker.start()
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            # amqtt logs its own cancelled broadcast loop as an ERROR with a traceback on every shutdown
            logging.getLogger("amqtt.broker").setLevel(logging.CRITICAL)
            await self._broker.shutdown()
            self._broker = None
