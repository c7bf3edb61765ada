"""Record what the system under test publishes: every value message of the gateway's
topics, with arrival time, for expectations and the run report."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

import gmqtt

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Sample:
    at: float  # wall time of arrival
    key: str  # device/point (from the measurement's mRID)
    value: float | int | None
    quality: dict
    seq: int | None
    timestamp: str
    retained: bool = False  # the broker's stored copy, sent because we subscribed: not a live value


class Recorder:
    """``async with Recorder(url, "gridgate/v1/gw1/#", mrid_to_key) as rec: rec.samples``."""

    def __init__(self, broker: str, topic: str, mrid_to_key: dict[str, str]) -> None:
        u = urlparse(broker)
        if u.scheme not in ("mqtt", "tcp", ""):
            raise ValueError(f"broker {broker!r}: only mqtt://host:port is supported for recording")
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 1883
        self.topic = topic
        self.mrid_to_key = mrid_to_key
        self.samples: list[Sample] = []
        self.status: list[tuple[float, dict]] = []
        self.undecodable = 0  # counted, never silently dropped
        self.unknown = 0
        self._subscribed = asyncio.Event()
        self.client = gmqtt.Client(f"gridgate-scenario-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()

    def _on_message(self, client, topic: str, payload: bytes, qos, properties) -> int:
        now = time.time()
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            self.undecodable += 1
            return 0
        if topic.endswith("/status"):
            self.status.append((now, body))
            return 0
        if "/meas/" not in topic or not isinstance(body, dict):
            return 0
        mrid = (body.get("measurement") or {}).get("mRID")
        key = self.mrid_to_key.get(str(mrid))
        if key is None:
            self.unknown += 1
            return 0
        retained = bool((properties or {}).get("retain"))  # MQTT 3.1.1: set only on delivery for a new subscription
        self.samples.append(Sample(now, key, body.get("value"), body.get("quality") or {}, body.get("seq"),
                                   body.get("timeStamp", ""), retained))
        return 0

    async def __aenter__(self) -> "Recorder":
        await asyncio.wait_for(self.client.connect(self.host, self.port, version=gmqtt.constants.MQTTv311), 10)
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await asyncio.wait_for(self.client.disconnect(), 5)
        except (asyncio.TimeoutError, OSError) as e:
            log.warning("recorder: disconnect from the broker failed: %s", e)

    def of(self, key: str) -> list[Sample]:
        return [s for s in self.samples if s.key == key]
