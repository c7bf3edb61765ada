"""A subscriber that records everything it receives, for assertions in end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import gmqtt


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


class Collector:
    def __init__(self, port: int, topics: list[str], host: str = "127.0.0.1", version: str = "5") -> None:
        self.host, self.port, self.topics = host, port, topics
        self.messages: list[Received] = []
        self.client = gmqtt.Client(f"test-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: [c.subscribe(t, qos=1) for t in self.topics]
        self.version = gmqtt.constants.MQTTv311 if version == "3.1.1" else gmqtt.constants.MQTTv50

    def _on_message(self, client, topic, payload, qos, properties) -> int:
        retain = bool(properties.get("retain", 0)) if isinstance(properties, dict) else False
        self.messages.append(Received(topic, payload, retain, time.time()))
        return 0

    async def __aenter__(self) -> "Collector":
        await self.client.connect(self.host, self.port, version=self.version)
        await asyncio.sleep(0.2)  # subscriptions acknowledged
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()

    def on(self, topic_part: str) -> list[Received]:
        return [m for m in self.messages if topic_part in m.topic]

    async def wait_for(self, pred: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = pred()
            if r:
                return r
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; received {len(self.messages)} messages")

    def latest(self, topic_part: str) -> dict | None:
        for m in reversed(self.messages):
            if topic_part in m.topic:
                return m.json
        return None
