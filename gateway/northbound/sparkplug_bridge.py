"""Sparkplug B alongside (or instead of) the CIM JSON: the gateway as one edge node.

A separate MQTT session, because Sparkplug needs its NDEATH as the session's will while
the CIM status topic needs its own ``offline`` will. Births carry every metric with its
datatype; data messages carry changed metrics by alias; a rebirth request (NCMD
``Node Control/Rebirth``) republishes the births. Sparkplug is live state: while the
broker is away nothing is queued (counted as ``skipped``), the next birth carries the
current values.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable

from gateway.cim import CatalogEntry
from gateway.northbound.mqtt import MqttPublisher
from gateway.northbound.sparkplug import SparkplugNode, is_rebirth_request

log = logging.getLogger(__name__)

DATATYPE = {"Analog": "Double", "Accumulator": "Int64", "Discrete": "Int32"}  # CIM: accumulators are integers


def metric_name(e: CatalogEntry) -> str:
    """``F1/FDR/LineCurrent/A`` — bay/equipment/measurementType[/phases]; stable, so aliases are stable."""
    psr = e.measurement["powerSystemResource"]
    name = f"{psr['bay']}/{psr['name']}/{e.measurement_type}"
    return name if e.measurement["phases"] == "none" else f"{name}/{e.measurement['phases']}"


class SparkplugBridge:
    def __init__(self, catalog: dict[str, CatalogEntry], group: str, edge: str,
                 make_publisher: Callable[..., MqttPublisher],
                 current: Callable[[], dict[str, tuple[object, int, float]]]) -> None:
        catalogue: dict[str, list[tuple[str, str]]] = {}
        self.names: dict[str, tuple[str, str]] = {}
        for key, e in catalog.items():
            catalogue.setdefault(e.device, []).append((metric_name(e), DATATYPE[e.kind]))
            self.names[key] = (e.device, metric_name(e))
        self.node = SparkplugNode(group, edge, catalogue)
        self.current = current  # key → (value, Q bits, ts) of every point seen so far
        self.stats: Counter = Counter()
        self._death = None  # this session's NDEATH (its bdSeq); sent on clean stop, the broker sends it otherwise
        self.publisher = make_publisher(will=self._new_session, on_connect=self._births)
        self.publisher.subscribe(self.node.topic("NCMD"), self._ncmd)

    async def start(self) -> None:
        await self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop(final=self._death)  # a clean DISCONNECT discards the will: send NDEATH ourselves

    def _new_session(self):
        self._death = self.node.will()
        return self._death

    def on_value(self, key: str, value: object, flags: int, ts: float) -> None:
        if not self.publisher.connected:
            self.stats["skipped"] += 1  # live state only; the next birth carries it
            return
        device, name = self.names[key]
        m = self.node.device_data(device, [(name, value, flags, ts)])
        self.publisher.publish(m.topic, m.payload, m.qos, m.retain)
        self.stats["ddata"] += 1

    def _births(self) -> None:
        m = self.node.node_birth()
        self.publisher.publish(m.topic, m.payload, m.qos, m.retain)
        now = self.current()
        per_device: dict[str, dict[str, tuple[object, int, float]]] = {}
        for key, (device, name) in self.names.items():
            if key in now:
                per_device.setdefault(device, {})[name] = now[key]
        for device in self.node.metrics:
            b = self.node.device_birth(device, per_device.get(device, {}))
            self.publisher.publish(b.topic, b.payload, b.qos, b.retain)
        self.stats["births"] += 1

    def _ncmd(self, topic: str, payload: bytes) -> None:
        try:
            rebirth = is_rebirth_request(payload)
        except ValueError as e:
            self.stats["bad_ncmd"] += 1
            log.warning("sparkplug: ignoring malformed NCMD on %s: %s", topic, e)
            return
        if rebirth:
            log.info("sparkplug: rebirth requested on %s", topic)
            self._births()
