"""The gateway process: southbound sources → normaliser → northbound publisher.

Owns the status (birth/death) and catalog topics and the periodic integrity republish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from gateway.cim import CatalogEntry, build_catalog, iso_ms
from gateway.histogram import LAG_BUCKETS, Buckets, measure_loop_lag
from gateway.memtrim import trim_heap_forever
from gateway.normaliser import Normaliser, Publication
from gateway.northbound.message import Message
from gateway.northbound.mqtt import MqttPublisher
from gateway.northbound.sink import Sink
from gateway.pipeline import Emitter
from gateway.site.openfiles import BASE, ensure_open_files, raise_hint
from gateway.southbound import DriverUnavailable, make_source
from gateway.southbound.contract import Driver, Operable, clean_counters

if TYPE_CHECKING:
    from gateway.config import Config

log = logging.getLogger(__name__)

VERSION = "0.1.0"


def status_topic(cfg: Config) -> str:
    return f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/status"


def heartbeat_topic(cfg: Config) -> str:
    """Retained ``{"timeStamp", "connectedAt", "interval"}``, renewed with every online status: when the
    gateway was last heard. The will cannot say when the gateway died; this survives the will."""
    return f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/heartbeat"


def catalog_topic(cfg: Config, mrid: str) -> str:
    return f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/catalog/{mrid}"


@dataclass
class GatewayOptions:
    """Run-time choices; None means: take it from the config's ``gateway.northbound``."""

    broker: str | None = None
    protocol: str | None = None  # MQTT protocol version "5" or "3.1.1"
    client_id: str | None = None
    require_tls: bool = False  # the network profile demands TLS
    status_interval: float = 10.0
    username: str | None = None
    password: str | None = None
    skip: Callable[[str], None] = field(default=lambda msg: log.warning("%s", msg))
    #: build a different northbound (data diode sender, air-gap courier) with the publisher's API:
    #: start(), publish(topic, payload, qos, retain, kind=), stop(final=), connected, stats
    northbound: Callable[["Gateway", Message], Sink] | None = None
    #: False in one-way profiles: the gateway subscribes to nothing (no commands, no rebirth requests)
    inbound: bool = True


def driver_counters(source: Driver) -> dict:
    """A driver's protocol counters (exceptions, timeouts, events, reports ...) as plain JSON data."""
    return clean_counters(source.status_counters())


class Gateway:
    """``async with Gateway(cfg, opts) as gw: ...`` or ``await gw.run()`` until cancelled."""

    def __init__(self, cfg: Config, opts: GatewayOptions | None = None,
                 catalog: dict[str, CatalogEntry] | None = None) -> None:
        """``cfg``: the site model or its runtime tables (gateway/startup.py); ``catalog``: built from it already."""
        self.cfg = cfg
        self.opts = opts or GatewayOptions()
        self.catalog: dict[str, CatalogEntry] = catalog if catalog is not None else build_catalog(cfg)
        nb = cfg.gateway.northbound
        self.started = time.time()
        self.connected_at: float | None = None  # when the current MQTT session's CONNECT went out
        self.spool = None
        if self.opts.northbound is not None:
            self.connected_at = self.started
            self.publisher = self.opts.northbound(self, self._will())
        else:
            self.publisher = self._mqtt(will=self._will, on_connect=self.birth, outbox=self._open_spool())
        first_seq = self.spool.last_seq + 1 if self.spool is not None else 1  # seq stays gap-free across restarts
        self.cim_values = nb.encoding in ("cim", "both")
        self.normaliser = Normaliser(self.catalog, self._sink, analog_qos=nb.analog_qos, first_seq=first_seq,
                                     sink_many=self._sink_many,
                                     analog_expiry=int(nb.analog_expiry) if nb.analog_expiry else None)
        self.sparkplug = None
        if nb.encoding != "cim" and self.opts.northbound is None:
            from gateway.northbound.sparkplug_bridge import make_bridge

            self.sparkplug = make_bridge(
                cfg, self.catalog, make_publisher=lambda **kw: self._mqtt(client_suffix="-spb", **kw),
                current=lambda: {k: (v.value, v.quality, v.timestamp) for k, v in self.normaliser.last.items()},
            )
        # the MQTT publisher queues the normaliser's messages as they are; other sinks take them one by one
        self._publish_values = (self.publisher.publish_many if isinstance(self.publisher, MqttPublisher)
                                else self._publish_each)
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
        self.loop_lag = Buckets(LAG_BUCKETS)  # how late a 0.25 s timer fires: status topic and /metrics
        self.pipeline_errors = 0

    # ------------------------------------------------------------------ pipeline

    def _mqtt(self, *, will, on_connect, outbox=None, client_suffix: str = "") -> MqttPublisher:
        """An MQTT session to the configured broker (URL, TLS, credentials from config, overridable)."""
        nb, o = self.cfg.gateway.northbound, self.opts
        url = o.broker or nb.url
        if not url:
            raise ValueError("no broker: give --broker mqtt://host:port or set gateway.northbound.url in the config")
        password = o.password
        if password is None and nb.password_env:
            password = os.environ.get(nb.password_env)
            if password is None:
                raise ValueError(f"gateway.northbound.password_env: environment variable {nb.password_env} is not set")
        tls = nb.tls  # the site file and the publisher share one TLS model (gateway.site.options)
        return MqttPublisher(
            url,
            client_id=(o.client_id or nb.client_id or f"gridgate-{self.cfg.gateway.id}") + client_suffix,
            will=will,
            queue_size=nb.queue_size,
            protocol=(o.protocol or nb.protocol),  # type: ignore[arg-type]
            tls=tls,
            username=o.username or nb.username,
            password=password,
            on_connect=on_connect,
            outbox=outbox,
            require_tls=nb.require_tls or o.require_tls,
            rate_limit=nb.spool.drain_rate if nb.spool else None,
        )

    def _open_spool(self):
        sp = self.cfg.gateway.northbound.spool
        if sp is None:
            return None
        from gateway.northbound.spool import Spool

        self.spool = Spool(sp.path, max_bytes=sp.max_bytes, max_age_s=sp.max_age, synchronous=sp.synchronous)
        return self.spool

    def _emit(self, r) -> None:
        """Drivers hand every Reading here; a failure downstream is logged and counted, never kills a driver."""
        try:
            self.normaliser(r)
        except Exception as e:  # noqa: BLE001 - the driver must keep polling whatever the sink does
            self.pipeline_errors += 1
            if self.pipeline_errors == 1 or self.pipeline_errors % 1000 == 0:
                log.exception("gateway: value of %s not published (%d such errors so far): %s", r.key,
                              self.pipeline_errors, e)

    def _emit_many(self, readings: list) -> None:
        """A poll's (or block's) readings at once; a failure is logged and counted as in :meth:`_emit`."""
        try:
            self.normaliser.many(readings)
        except Exception as e:  # noqa: BLE001 - the driver must keep polling whatever the sink does
            self.pipeline_errors += 1
            if self.pipeline_errors == 1 or self.pipeline_errors % 1000 == 0:
                log.exception("gateway: values of %s ... not all published (%d such errors so far): %s",
                              readings[0].key if readings else "?", self.pipeline_errors, e)

    def _sink(self, p: Publication) -> None:
        if self.cim_values:
            self._publish_values([p])
        if self.sparkplug is not None:
            last = self.normaliser.last[p.key]
            self.sparkplug.on_value(p.key, last.value, last.quality, last.timestamp)

    def _sink_many(self, pubs: list[Publication]) -> None:
        if self.cim_values:
            self._publish_values(pubs)
        if self.sparkplug is not None:
            last = self.normaliser.last
            for p in pubs:
                v = last[p.key]
                self.sparkplug.on_value(p.key, v.value, v.quality, v.timestamp)

    def _publish_each(self, pubs: list[Publication]) -> None:
        for p in pubs:
            self.publisher.publish(p.topic, p.payload, p.qos, p.retain, kind=p.kind, seq=p.seq, expiry=p.expiry)

    def _will(self) -> Message:
        """The last will, built for each CONNECT: it carries that connect time as ``connectedAt`` and no
        ``timeStamp`` (the broker publishes it later, at the death; see heartbeat_topic for last heard)."""
        self.connected_at = time.time()
        return Message(status_topic(self.cfg), self._status_payload("offline", "connection lost", will=True), qos=1,
                       retain=True)

    def _heartbeat(self) -> None:
        body = {"gateway": self.cfg.gateway.id, "timeStamp": iso_ms(time.time()),
                "connectedAt": iso_ms(self.connected_at or self.started), "interval": self.opts.status_interval}
        self.publisher.publish(heartbeat_topic(self.cfg), json.dumps(body, separators=(",", ":")).encode(), qos=1,
                               retain=True)

    def birth(self) -> None:
        """Birth: retained online status and the catalog (on every MQTT (re)connect; conduits call it once)."""
        self.publisher.publish(status_topic(self.cfg), self._status_payload("online"), qos=1, retain=True)
        self._heartbeat()
        catalog = (Message(catalog_topic(self.cfg, e.mrid), e.measurement_json.encode(), 1, True) for e in self.catalog.values())
        if isinstance(self.publisher, MqttPublisher):
            self.publisher.publish_feed(catalog)  # encoded as sent: 50,000 points would hold ~35 MB at once
        else:
            for m in catalog:
                self.publisher.publish(m.topic, m.payload, qos=1, retain=True)

    def _status_payload(self, state: str, reason: str | None = None, will: bool = False) -> bytes:
        body: dict = {"state": state, "gateway": self.cfg.gateway.id}
        if not will:
            body["timeStamp"] = iso_ms(time.time())
        if self.connected_at is not None:
            body["connectedAt"] = iso_ms(self.connected_at)
        if reason:
            body["reason"] = reason
        if state == "online":
            body["since"] = iso_ms(self.started)
            body["version"] = VERSION
            body["commands"] = getattr(self, "commands", None) is not None  # cmd/{mRID} subscribed (config and profile)
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
                readings=n.readings, published=n.published, suppressed=n.suppressed, unknown=n.unknown, seq=self.normaliser.seq,
                pipelineErrors=getattr(self, "pipeline_errors", 0),
            )
        if hasattr(self, "publisher"):
            ps = self.publisher.stats
            out.update(sent=ps.published, queued=ps.queued, dropped=sum(ps.dropped.values()), reconnects=ps.reconnects)
            if ps.dropped:
                out["droppedBy"] = dict(ps.dropped)  # by reason / kind: queue_full, spool_bound_analog, ...
            latency = getattr(self.publisher, "latency", None)  # the MQTT publisher's (conduits have none)
            if latency is not None:
                out["publishLatency"] = latency.as_dict()  # reading received → written (QoS 0) / PUBACK (QoS 1)
            oldest = getattr(self.publisher, "oldest_queued_age", None)
            if oldest is not None:
                out["oldestQueuedAge"] = round(oldest(), 3)  # seconds the oldest waiting value has waited
        if hasattr(self, "loop_lag"):
            out["eventLoopLag"] = self.loop_lag.as_dict()
        if getattr(self, "spool", None) is not None:
            out["spool"] = self.spool.status()  # state ok/unwritable, writeFailures, values (the depth), bytes
        if getattr(self, "sparkplug", None) is not None:
            out["sparkplug"] = self.sparkplug.status()  # bdSeq, births, held/historical readings, command counts
        return out

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        n = len(self.sources) + BASE  # a connection per device, before any is opened: a clear error, not EMFILE mid-poll
        ensure_open_files(n, n, f"a gateway of {len(self.sources):,} devices (a connection each)",
                          f"{raise_hint(n)}, or split the site over gateways (docs/scaling.md).")
        self._commands_setup()
        await self.publisher.start()
        if self.sparkplug is not None:
            await self.sparkplug.start(inbound=self.opts.inbound, commands=self.commands)
        for s in self.sources:
            self._tasks.append(asyncio.create_task(s.run(Emitter(self._emit, self._emit_many)), name=f"source-{s.device}"))
        self._tasks.append(asyncio.create_task(self._integrity(), name="integrity"))
        self._tasks.append(asyncio.create_task(self._status(), name="status"))
        self._tasks.append(asyncio.create_task(measure_loop_lag(self.loop_lag), name="loop-lag"))
        self._tasks.append(asyncio.create_task(trim_heap_forever(), name="heap-trim"))
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
        if self.sparkplug is not None:
            await self.sparkplug.stop()
        await self.publisher.stop(final=final)
        if self.spool is not None:
            self.spool.close()

    def _commands_setup(self) -> None:
        """Subscribe to the command topics only where config and network profile both allow inbound."""
        self.commands = None
        nb = self.cfg.gateway.northbound
        if not nb.commands:
            return
        if not self.opts.inbound:
            log.warning("gateway: commands are enabled in the config but this network profile allows no inbound "
                        "traffic; the gateway subscribes to nothing")
            return
        from gateway.northbound.command_auth import command_keys
        from gateway.northbound.commands import CommandRouter, command_points

        targets = {s.device: s for s in self.sources if isinstance(s, Operable)}
        self.commands = CommandRouter(nb.topic_prefix, self.cfg.gateway.id, command_points(self.cfg), targets,
                                      lambda t, p, q, r: self.publisher.publish(t, p, q, r), allowed=True,
                                      operator_topics=nb.operator_topics, keys=command_keys(nb.command_keys))
        self.publisher.subscribe(self.commands.subscription, self.commands.on_message)

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
            states += self.spool.state if self.spool is not None else ""  # a spool write failure is news too
            if (states != last or now >= due) and self.publisher.connected:
                self.publisher.publish(status_topic(self.cfg), self._status_payload("online"), qos=1, retain=True)
                self._heartbeat()
                last, due = states, now + self.opts.status_interval
