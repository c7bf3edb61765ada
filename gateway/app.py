"""The gateway process: southbound sources → normaliser → northbound publisher.

Owns the status (birth/death) and catalog topics and the periodic integrity republish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from gateway.cim import CatalogEntry, build_catalog, iso_ms
from gateway.config import Config
from gateway.normaliser import Normaliser, Publication
from gateway.northbound.message import Message
from gateway.northbound.mqtt import MqttPublisher
from gateway.southbound import DriverUnavailable, make_source

log = logging.getLogger(__name__)

VERSION = "0.1.0"


def status_topic(cfg: Config) -> str:
    return f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/status"


def catalog_topic(cfg: Config, mrid: str) -> str:
    return f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/catalog/{mrid}"


@dataclass
class GatewayOptions:
    broker: str = "mqtt://127.0.0.1:1883"
    protocol: str = "5"  # MQTT protocol version
    client_id: str | None = None
    status_interval: float = 10.0
    username: str | None = None
    password: str | None = None
    skip: Callable[[str], None] = field(default=lambda msg: log.warning("%s", msg))
    #: build a different northbound (data diode sender, air-gap courier) with the publisher's API:
    #: start(), publish(topic, payload, qos, retain, kind=), stop(final=), connected, stats
    northbound: Callable[["Gateway", Message], object] | None = None
    #: False in one-way profiles: the gateway subscribes to nothing (no commands, no rebirth requests)
    inbound: bool = True


def driver_counters(source: object) -> dict:
    """A driver's protocol counters (exceptions, timeouts, events, reports ...) as plain JSON data."""
    import dataclasses

    raw = getattr(source, "counters", None)
    if not isinstance(raw, dict):
        raw = getattr(source, "stats", None)
    if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        raw = dataclasses.asdict(raw)
    if not isinstance(raw, dict):
        return {}
    out = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            v = {str(kk): vv for kk, vv in v.items() if isinstance(vv, (int, float))}
        if isinstance(v, (int, float, dict)) and not isinstance(v, bool):
            out[str(k)] = v
    return out


class Gateway:
    """``async with Gateway(cfg, opts) as gw: ...`` or ``await gw.run()`` until cancelled."""

    def __init__(self, cfg: Config, opts: GatewayOptions | None = None) -> None:
        self.cfg = cfg
        self.opts = opts or GatewayOptions()
        self.catalog: dict[str, CatalogEntry] = build_catalog(cfg)
        nb = cfg.gateway.northbound
        self.started = time.time()
        will = Message(status_topic(cfg), self._status_payload("offline", "connection lost"), qos=1, retain=True)
        if self.opts.northbound is not None:
            self.publisher = self.opts.northbound(self, will)
        else:
            self.publisher = MqttPublisher(
                self.opts.broker,
                client_id=self.opts.client_id or f"gridgate-{cfg.gateway.id}",
                will=will,
                queue_size=nb.queue_size,
                protocol=self.opts.protocol,  # type: ignore[arg-type]
                username=self.opts.username,
                password=self.opts.password,
                on_connect=self._on_connect,
            )
        self.normaliser = Normaliser(self.catalog, self._sink, analog_qos=nb.analog_qos)
        self.sources = []
        self.skipped: dict[str, str] = {}
        for d in cfg.devices:
            if not d.enabled:
                continue
            try:
                self.sources.append(make_source(d))
            except DriverUnavailable as e:
                self.skipped[d.name] = str(e)
                self.opts.skip(f"gateway: skipping device {d.name} ({d.protocol}): {e}")
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ pipeline

    def _sink(self, p: Publication) -> None:
        self.publisher.publish(p.topic, p.payload, p.qos, p.retain, kind=p.kind.lower())

    def _on_connect(self) -> None:
        """Birth: retained online status and the catalog, on every (re)connect."""
        self.publisher.publish(status_topic(self.cfg), self._status_payload("online"), qos=1, retain=True)
        for e in self.catalog.values():
            self.publisher.publish(
                catalog_topic(self.cfg, e.measurement["mRID"]),
                json.dumps(e.measurement, separators=(",", ":")).encode(),
                qos=1,
                retain=True,
            )

    def _status_payload(self, state: str, reason: str | None = None) -> bytes:
        body: dict = {"state": state, "gateway": self.cfg.gateway.id, "timeStamp": iso_ms(time.time())}
        if reason:
            body["reason"] = reason
        if state == "online":
            body["since"] = iso_ms(self.started)
            body["version"] = VERSION
            body["devices"] = self.device_states()
            body["stats"] = self.stats()
        return json.dumps(body, separators=(",", ":")).encode()

    def device_states(self) -> dict[str, dict]:
        out = {}
        for s in getattr(self, "sources", []):
            st = s.state
            out[s.device] = {
                "protocol": s.protocol,
                "connected": st.connected,
                "polls": st.polls,
                "failures": st.failures,
                "reconnects": st.reconnects,
                "lastError": st.last_error or None,
            }
            counters = driver_counters(s)
            if counters:
                out[s.device]["counters"] = counters
        for name, why in getattr(self, "skipped", {}).items():
            out[name] = {"connected": False, "skipped": why}
        return out

    def stats(self) -> dict:
        n = self.normaliser.stats if hasattr(self, "normaliser") else None
        out: dict = {}
        if n is not None:
            out.update(
                readings=n.readings, published=n.published, suppressed=n.suppressed, unknown=n.unknown, seq=self.normaliser.seq
            )
        if hasattr(self, "publisher"):
            ps = self.publisher.stats
            out.update(sent=ps.published, queued=ps.queued, dropped=sum(ps.dropped.values()), reconnects=ps.reconnects)
        return out

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.publisher.start()
        for s in self.sources:
            self._tasks.append(asyncio.create_task(s.run(self.normaliser), name=f"source-{s.device}"))
        self._tasks.append(asyncio.create_task(self._integrity(), name="integrity"))
        self._tasks.append(asyncio.create_task(self._status(), name="status"))
        log.info(
            "gateway %s: %d devices, %d points → %s", self.cfg.gateway.id, len(self.sources), len(self.catalog), self.opts.broker
        )

    async def stop(self, timeout: float = 5.0) -> None:
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for t in pending:  # a driver stuck in a library call must not hold the shutdown hostage
                log.error("gateway: %s did not stop within %.0f s; abandoning it", t.get_name(), timeout)
                t.print_stack(limit=8)
        self._tasks.clear()
        final = Message(status_topic(self.cfg), self._status_payload("offline", "shutdown"), qos=1, retain=True)
        await self.publisher.stop(final=final)

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def __aenter__(self) -> "Gateway":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _integrity(self) -> None:
        interval = self.cfg.gateway.northbound.integrity_interval
        while True:
            await asyncio.sleep(interval)
            self.normaliser.republish_all()

    async def _status(self) -> None:
        """Republish the retained status when a device's comms state changes, else every status_interval."""
        last, due = "", 0.0
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            states = json.dumps({k: v.get("connected") for k, v in self.device_states().items()}, sort_keys=True)
            if (states != last or now >= due) and self.publisher.connected:
                self.publisher.publish(status_topic(self.cfg), self._status_payload("online"), qos=1, retain=True)
                last, due = states, now + self.opts.status_interval
