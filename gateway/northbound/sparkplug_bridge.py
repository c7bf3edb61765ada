"""Sparkplug B alongside (or instead of) the CIM JSON: the gateway as one edge node.

A separate MQTT session, because Sparkplug needs its NDEATH as the session's will while
the CIM status topic needs its own ``offline`` will. What a host application relies on
(Sparkplug 3.0, docs/sparkplug.md):

* bdSeq +1 per MQTT session, persisted (sparkplug_state.py); NDEATH is the will of that bdSeq;
* births carry current values and qualities: at process start they wait (``birth_wait``) for
  the first reading of every point, then unread points go out null with quality bad;
* ``primary_host``: no births until the host's ``spBv1.0/STATE/{id}`` says online; when it comes
  back, births again (same bdSeq, so consistent with the registered NDEATH); while it is away,
  ``host_offline: spool`` holds the data back (sent later as historical), ``live`` keeps sending;
* readings that could not go out live (broker or host away) are sent after the births with
  ``is_historical`` and their original timestamps (sparkplug_outbox.py);
* NCMD ``Node Control/Rebirth``; DCMD (and NCMD naming a ``device/metric``) go through the same
  command path and policy as ``cmd/{mRID}`` (commands.py), the result as a DDATA of the point's
  ``<metric>/CommandResult`` String metric (the JSON result of cmd/{mRID}/result).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

from gateway.cim import CatalogEntry
from gateway.northbound.commands import CommandRouter
from gateway.northbound.message import Message
from gateway.northbound.mqtt import MqttPublisher
from gateway.northbound.outbox import Outbox
from gateway.northbound.sparkplug import NAMESPACE, REBIRTH, STRING, InMetric, SparkplugNode, command_metrics
from gateway.northbound.sparkplug_outbox import SparkplugOutbox
from gateway.northbound.sparkplug_state import SparkplugState

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DATATYPE = {"Analog": "Double", "Accumulator": "Int64", "Discrete": "Int32"}  # CIM: accumulators are integers
RESULT = "CommandResult"  # suffix of a commandable point's result metric


def metric_name(e: CatalogEntry) -> str:
    """``F1/FDR/LineCurrent/A`` — bay/equipment/measurementType[/phases]; stable, so aliases are stable."""
    psr = e.measurement["powerSystemResource"]
    name = f"{psr['bay']}/{psr['name']}/{e.measurement_type}"
    return name if e.measurement["phases"] == "none" else f"{name}/{e.measurement['phases']}"


def eng_unit(e: CatalogEntry) -> str:
    """``kV`` from unitMultiplier ``k`` and unitSymbol ``V`` (empty for dimensionless)."""
    sym, mult = e.measurement.get("unitSymbol", "none"), e.measurement.get("unitMultiplier", "none")
    sym = "" if sym in (None, "none") else str(sym)
    return sym if not sym or mult in (None, "none") else f"{mult}{sym}"


class SparkplugBridge:
    def __init__(self, catalog: dict[str, CatalogEntry], group: str, edge: str,
                 make_publisher: Callable[..., MqttPublisher],
                 current: Callable[[], dict[str, tuple[object, int, float]]], *,
                 state: SparkplugState | None = None, primary_host: str | None = None,
                 host_offline: Literal["spool", "live"] = "spool", birth_wait: float = 5.0,
                 queue_size: int = 10000, commandable: frozenset[str] = frozenset(),
                 backlog: Outbox | None = None) -> None:
        self.state = state or SparkplugState(None)
        catalogue: dict[str, list[tuple]] = {}
        self.names: dict[str, tuple[str, str]] = {}
        self.mrid_of: dict[tuple[str, str], str] = {}
        for key, e in catalog.items():
            name = metric_name(e)
            catalogue.setdefault(e.device, []).append((name, DATATYPE[e.kind], {"engUnit": eng_unit(e), "mRID": e.mrid}))
            if e.mrid in commandable:
                catalogue[e.device].append((f"{name}/{RESULT}", "String", {"mRID": e.mrid}))
            self.names[key] = (e.device, name)
            self.mrid_of[(e.device, name)] = e.mrid
        aliases = self.state.assign([f"{d}/{item[0]}" for d, items in catalogue.items() for item in items])
        self.node = SparkplugNode(group, edge, catalogue, aliases=aliases, bd_seq=self.state.bd_seq,
                                  on_session=self.state.new_session)
        self.current = current  # key → (value, Q bits, ts) of every point seen so far
        self.primary_host = primary_host
        self.host_offline = host_offline
        self.birth_wait = birth_wait
        self.stats: Counter = Counter()
        self.commands: CommandRouter | None = None
        self.host_online = primary_host is None
        self._host_ts = -1  # timestamp of the newest STATE seen (older ones are replays: ignored)
        self.born = False  # this session's births are out
        self._started = time.monotonic()
        self._unread: set[str] | None = set(self.names)  # points without a first reading yet (None: births may go)
        self._death: Message | None = None  # this session's NDEATH; sent on clean stop, the broker sends it otherwise
        self._established = False  # the CONNECT carrying _death got its CONNACK
        self._tasks: set[asyncio.Task] = set()
        self._results: dict[tuple[str, str], tuple[object, int, float]] = {}  # last command result per result metric
        self._ticker: asyncio.Task | None = None
        self.outbox = SparkplugOutbox(queue_size, self._encode, self._sending, lambda: self.node.bd_seq, backlog)
        self.publisher = make_publisher(will=self._new_session, on_connect=self._on_connect, outbox=self.outbox)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, inbound: bool = True, commands: CommandRouter | None = None) -> None:
        """Subscribe (only where the profile allows inbound) and connect; births follow when due."""
        if inbound:
            self.publisher.subscribe(self.node.topic("NCMD"), self._ncmd)
            if commands is not None:
                self.commands = commands
                self.publisher.subscribe(f"{NAMESPACE}/{self.node.group}/DCMD/{self.node.edge}/+", self._dcmd)
        if self.primary_host is not None:
            if not inbound:
                raise ValueError("sparkplug.primary_host: this network profile allows no inbound traffic, so the "
                                 "host's STATE cannot be read; remove primary_host or allow inbound")
            self.publisher.subscribe(f"{NAMESPACE}/STATE/{self.primary_host}", self._state)
        self._ticker = asyncio.create_task(self._tick(), name="sparkplug-births")
        await self.publisher.start()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        held = 0 if self._sending() else self.outbox.backlog()
        if held and self.outbox.durable:
            log.info("sparkplug: %d reading(s) held back stay in the spool; sent as historical after the next births", held)
        elif held:
            self.stats["undelivered_at_stop"] += held
            log.warning("sparkplug: stopping with %d reading(s) held back (no births / host offline): not sent", held)
        final = self.node.death() if self.node.bd_seq >= 0 else None
        await self.publisher.stop(final=final)  # a clean DISCONNECT discards the will: send NDEATH ourselves
        if self.outbox.durable:
            self.outbox.close()

    def status(self) -> dict[str, int]:
        """Counters for the gateway's status topic (``stats.sparkplug``)."""
        dropped = {f"dropped_{k}": v for k, v in self.publisher.stats.dropped.items()}  # spool bound, refusals
        return {"bdSeq": self.node.bd_seq, "hostOnline": int(self.host_online), "backlog": self.outbox.backlog(),
                "historical": self.outbox.historical, **self.stats, **dropped}

    def _new_session(self) -> Message:
        """Called for every CONNECT: a new bdSeq (persisted), its NDEATH as the will; births are due again.

        An attempt that never got its CONNACK registered no will, so the next one keeps its bdSeq (a broker
        outage of many retries does not run bdSeq round its 256 values).
        """
        self.born = False
        if self.primary_host is not None:
            self.host_online = False  # verified anew on each session: the retained STATE arrives after SUBSCRIBE
        if self._death is None or self._established:
            self._death = self.node.will()
        self._established = False
        return self._death

    # ------------------------------------------------------------------ births

    def _sending(self) -> bool:
        """Data may leave now: this session is born, and the host is online (or we publish regardless)."""
        return self.born and self.publisher.connected and (self.host_online or self.host_offline == "live")

    def _values_ready(self) -> bool:
        if self._unread is None:
            return True
        if not self._unread or time.monotonic() - self._started >= self.birth_wait:
            self._unread = None  # from now on births go out with whatever is known
            return True
        return False

    def _on_connect(self) -> None:
        self._established = True
        self._try_births()

    def _try_births(self) -> None:
        if not self.born and self.publisher.connected and self.host_online and self._values_ready():
            self._births()

    async def _tick(self) -> None:
        """Births wait for values (at most birth_wait) and for the host: check a few times a second."""
        waiting_since: float | None = None
        while True:
            await asyncio.sleep(0.1)
            self._try_births()
            if self.born or not self.publisher.connected or self.host_online:
                waiting_since = None
            elif waiting_since is None:
                waiting_since = time.monotonic()
            elif time.monotonic() - waiting_since > 30:  # said once per wait: a wrong host id waits forever
                log.warning("sparkplug: no births for 30 s: primary host %r is not online on %s/STATE/%s (is that its "
                            "host id? sparkplug.primary_host); data is held meanwhile", self.primary_host, NAMESPACE,
                            self.primary_host)
                waiting_since = float("inf")

    def _births(self) -> None:
        m = self.node.node_birth()
        self.publisher.publish(m.topic, m.payload, m.qos, m.retain)
        now = self.current()
        per_device: dict[str, dict[str, tuple[object, int, float]]] = {}
        for key, (device, name) in self.names.items():
            if key in now:
                per_device.setdefault(device, {})[name] = now[key]
        for device, defs in self.node.metrics.items():  # result metrics: the last result, "" before any command
            for name in defs:
                if name.endswith(f"/{RESULT}"):
                    per_device.setdefault(device, {})[name] = self._results.get((device, name), ("", 0, 0.0))
        for device in self.node.metrics:
            b = self.node.device_birth(device, per_device.get(device, {}))
            self.publisher.publish(b.topic, b.payload, b.qos, b.retain)
        self.born = True
        self.stats["births"] += 1

    # ------------------------------------------------------------------ data

    def on_value(self, key: str, value: object, flags: int, ts: float) -> None:
        if self._unread is not None:
            self._unread.discard(key)
        device, name = self.names[key]
        self._queue(device, name, value, flags, ts)

    def _queue(self, device: str, name: str, value: object, flags: int, ts: float) -> None:
        live = self._sending()
        if self.outbox.add((device, name, value, flags, ts, live, self.node.bd_seq)):
            self.stats["ddata" if live else "spooled"] += 1
        else:
            self.stats["queue_full"] += 1
            if self.stats["queue_full"] in (1, 1000) or self.stats["queue_full"] % 100000 == 0:
                log.error("sparkplug: %d reading(s) refused so far: the held backlog reached northbound.queue_size "
                          "(%d); configure a spool to hold more, or check the broker / primary host",
                          self.stats["queue_full"], self.outbox.size)

    def _encode(self, device: str, name: str, value: object, flags: int, ts: float, historical: bool) -> Message:
        return self.node.device_data(device, [(name, value, flags, ts)], historical=historical)

    # ------------------------------------------------------------------ inbound: STATE, NCMD, DCMD

    def _parsed(self, kind: str, topic: str, parse: Callable[[bytes], _T], payload: bytes) -> _T | None:
        """Parse one inbound message; a malformed one is counted (``bad_<kind>``), logged and ignored."""
        try:
            return parse(payload)
        except ValueError as e:
            self.stats[f"bad_{kind.lower()}"] += 1
            log.warning("sparkplug: ignoring malformed %s on %s: %s", kind, topic, e)
            return None

    def _state(self, topic: str, payload: bytes) -> None:
        """Sparkplug 3.0 ``{"online": bool, "timestamp": ms}`` (2.x ``ONLINE``/``OFFLINE`` accepted too)."""
        parsed = self._parsed("STATE", topic, _parse_state, payload)
        if parsed is None:
            return
        online, ts = parsed
        if ts is not None:
            if ts < self._host_ts:
                self.stats["stale_state"] += 1
                return  # an older STATE (e.g. a late will of the host's previous session)
            self._host_ts = ts
        was = self.host_online
        self.host_online = online
        if online and not was:
            log.info("sparkplug: primary host %s online: births", self.primary_host)
            if self.publisher.connected and self._values_ready():
                self._births()  # also a rebirth of a live session: same bdSeq as the registered NDEATH
        elif was and not online:
            log.warning("sparkplug: primary host %s offline: %s", self.primary_host,
                        "holding data (sent as historical when it returns)" if self.host_offline == "spool"
                        else "data keeps flowing (host_offline: live)")
            if self.host_offline == "spool":
                self.born = False  # the host has lost our session: births again when it returns

    def _ncmd(self, topic: str, payload: bytes) -> None:
        cmd = self._parsed("NCMD", topic, command_metrics, payload)
        if cmd is None:
            return
        ts, metrics = cmd
        for m in metrics:
            if m.name == REBIRTH:
                if m.value is True and self.publisher.connected and (self.host_online or self.host_offline == "live"):
                    log.info("sparkplug: rebirth requested on %s", topic)
                    self._births()
            elif m.name and "/" in m.name and self.commands is not None:
                if m.timestamp_ms is None:
                    m.timestamp_ms = ts
                self._command(m.name.partition("/")[0], m, topic)  # NCMD naming {device}/{metric}: a device command
            else:
                self.stats["bad_ncmd"] += 1
                log.warning("sparkplug: NCMD metric %r on %s is not a node control or a <device>/<metric> (ignored)",
                            m.name or m.alias, topic)

    def _dcmd(self, topic: str, payload: bytes) -> None:
        device = topic.rsplit("/", 1)[-1]
        cmd = self._parsed("DCMD", topic, command_metrics, payload)
        if cmd is None:
            return
        ts, metrics = cmd
        for m in metrics:
            if m.timestamp_ms is None:
                m.timestamp_ms = ts
            if m.name is not None and device in self.node.metrics:
                m.name = f"{device}/{m.name}"
            self._command(device, m, topic)

    def _command(self, device: str, m: InMetric, topic: str) -> None:
        """One command metric → the cmd/{mRID} path: same checks (operator, enable, TTL, duplicate, value)."""
        assert self.commands is not None
        target = self._resolve(device, m)
        if target is None:
            self.stats["bad_dcmd"] += 1
            log.warning("sparkplug: command on %s names no metric of device %s (%r): ignored", topic, device,
                        m.name or m.alias)
            return
        dev, name = target
        mrid = self.mrid_of[(dev, name)]
        issued = m.timestamp_ms / 1000 if m.timestamp_ms is not None else None
        props = {k.lower(): v for k, v in m.properties.items()}
        request = {"id": str(props.get("id") or f"spb-{dev}-{self.node.metrics[dev][name].alias}-{m.timestamp_ms}"),
                   "value": m.value, "operator": str(props.get("operator") or self.primary_host or "sparkplug"),
                   "issued": issued}
        result_metric = f"{name}/{RESULT}"

        def reply(body: dict) -> None:
            if result_metric in self.node.metrics[dev]:
                result = (json.dumps(body, default=str, separators=(",", ":")), 0, time.time())
                self._results[(dev, result_metric)] = result  # a rebirth carries it
                self._queue(dev, result_metric, *result)
            self.stats[f"dcmd_{body['status']}"] += 1

        task = asyncio.get_running_loop().create_task(self.commands.execute(mrid, request, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _resolve(self, device: str, m: InMetric) -> tuple[str, str] | None:
        if m.name is not None:
            dev, _, name = m.name.partition("/")
            defs = self.node.metrics.get(dev, {})
            return (dev, name) if name in defs and defs[name].datatype != STRING else None
        if m.alias is not None and m.alias in self.node.by_alias:
            dev, d = self.node.by_alias[m.alias]
            return (dev, d.name) if dev == device and d.datatype != STRING else None
        return None


def make_bridge(cfg: Any, catalog: dict[str, CatalogEntry], make_publisher: Callable[..., MqttPublisher],
                current: Callable[[], dict[str, tuple[object, int, float]]]) -> SparkplugBridge:
    """The bridge for a site config (gateway.config.Config): its sparkplug options, state file, commandable points."""
    from gateway.northbound.commands import command_points

    nb = cfg.gateway.northbound
    sp = nb.sparkplug
    path = sp.state
    if path is None and nb.spool is not None:
        path = nb.spool.path.with_name(nb.spool.path.stem + ".sparkplug.json")
    commandable = frozenset(p.mrid for p in command_points(cfg)) if nb.commands else frozenset()
    state = SparkplugState(Path(path) if path is not None else None)
    backlog = None
    if nb.spool is not None:  # held readings survive a restart too, in a spool of their own
        from gateway.northbound.spool import Spool

        backlog = Spool(nb.spool.path.with_name(nb.spool.path.stem + ".sparkplug.db"), max_bytes=nb.spool.max_bytes,
                        max_age_s=nb.spool.max_age, synchronous=nb.spool.synchronous)
    return SparkplugBridge(catalog, sp.group, sp.edge or cfg.gateway.id, make_publisher, current, state=state,
                           primary_host=sp.primary_host, host_offline=sp.host_offline, birth_wait=float(sp.birth_wait),
                           queue_size=nb.queue_size, commandable=commandable, backlog=backlog)


def _parse_state(payload: bytes) -> tuple[bool, int | None]:
    text = payload.decode("utf-8", "replace").strip()
    if text in ("ONLINE", "OFFLINE"):
        return text == "ONLINE", None
    try:
        body = json.loads(text)
    except ValueError:
        raise ValueError(f"not JSON and not ONLINE/OFFLINE: {text[:60]!r}") from None
    if not isinstance(body, dict) or not isinstance(body.get("online"), bool):
        raise ValueError('expected {"online": true|false, "timestamp": <ms>}')
    ts = body.get("timestamp")
    if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool)):
        raise ValueError("timestamp must be epoch milliseconds (an integer)")
    return body["online"], ts
