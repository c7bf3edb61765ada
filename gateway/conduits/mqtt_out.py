"""Minimal MQTT publisher for the far side of a conduit (diode receiver, courier import):
publishes records as they come and can wait until every QoS>0 message is acknowledged."""

from __future__ import annotations

import asyncio
import time
import uuid

from gmqtt import Client

from gateway.conduits.records import Record
from gateway.northbound.gmqtt_adapter import acked_all


class Republisher:
    def __init__(self, host: str, port: int = 1883, client_id: str | None = None) -> None:
        self.host, self.port = host, port
        self.client = Client(client_id or f"gg-conduit-{uuid.uuid4().hex[:8]}")
        self.client.set_config({"reconnect_retries": 1_000_000, "reconnect_delay": 1})
        self.published = 0

    async def connect(self, timeout: float = 10) -> None:
        try:
            await asyncio.wait_for(self.client.connect(self.host, self.port, keepalive=30), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise ConnectionError(f"cannot reach MQTT broker {self.host}:{self.port}: {e or 'timeout'}") from None

    async def publish(self, rec: Record) -> None:
        while True:  # the broker's receive-maximum bounds messages in flight: wait for acks
            try:
                self.client.publish(rec.topic, rec.payload, qos=rec.qos, retain=rec.retain)
                self.published += 1
                return
            except OverflowError:
                await asyncio.sleep(0.02)

    async def drain(self, timeout: float = 30) -> bool:
        """True once every QoS>0 publish is acknowledged."""
        deadline = time.monotonic() + timeout
        while not acked_all(self.client):  # gmqtt has no public API for this: gmqtt_adapter owns the internals
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        await self.client.disconnect()
