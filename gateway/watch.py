"""A live terminal table of what a gateway publishes: name, value, unit, quality, age.

Subscribes to ``{prefix}/+/meas/#`` and ``{prefix}/+/status`` on any broker; works with
the MQTT 3.1.1 embedded broker and with Mosquitto.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import gmqtt
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.northbound.mqtt import parse_url

MULT = {"none": "", "k": "k", "M": "M"}
QSTYLE = {"GOOD": "green", "QUESTIONABLE": "yellow", "INVALID": "bold red"}


@dataclass
class Row:
    name: str
    value: object
    unit: str
    validity: str
    flags: list[str]
    ts: float
    received: float
    seq: int


@dataclass
class WatchState:
    rows: dict[str, Row] = field(default_factory=dict)
    status: dict[str, dict] = field(default_factory=dict)
    catalog: dict[str, dict] = field(default_factory=dict)  # measurement mRID → Measurement (for compact values)
    received: int = 0
    bad_payloads: int = 0

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            self.bad_payloads += 1
            return
        if topic.endswith("/status"):
            self.status[topic.split("/")[-2]] = body
            return
        if "/catalog/" in topic and isinstance(body, dict) and "mRID" in body:
            self.catalog[body["mRID"]] = body
            return
        if "/meas/" not in topic or not isinstance(body, dict) or "measurement" not in body:
            return
        self.received += 1
        m = body["measurement"]
        if "name" not in m:  # compact payload: the description comes from the retained catalog
            m = self.catalog.get(m.get("mRID"), {"name": m.get("mRID", "?"), "powerSystemResource": {}})
        q = body.get("quality", {})
        psr = m.get("powerSystemResource", {})
        name = f"{psr.get('substation','')}/{psr.get('bay','')}/{psr.get('equipment', psr.get('name',''))} {m.get('name')}"
        value = body.get("valueAlias") or body.get("value")
        unit = MULT.get(m.get("unitMultiplier", "none"), "") + ("" if m.get("unitSymbol") == "none" else m.get("unitSymbol", ""))
        flags = [k for k, v in q.items() if v is True]
        if q.get("source", "PROCESS") != "PROCESS":
            flags.append(q["source"].lower())
        self.rows[topic] = Row(name, value, unit, q.get("validity", "?"), flags, _parse_ts(body.get("timeStamp")),
                               time.time(), body.get("seq", 0))


def _parse_ts(s: str | None) -> float:
    from datetime import datetime

    if not s:
        return 0.0
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def render(state: WatchState, limit: int | None = None, match: str | None = None) -> Group:
    """The table, rows sorted by topic (so grouped by substation and bay); ``limit`` rows at most (default:
    what fits the terminal); ``match`` keeps the rows whose name contains it (case-insensitive)."""
    if limit is None:
        from rich.console import Console

        limit = max(10, Console().size.height - 9)
    now = time.time()
    table = Table(title="gridgate — live CIM measurements", expand=False, header_style="bold")
    for col, just in (("measurement", "left"), ("value", "right"), ("unit", "left"), ("quality", "left"), ("age", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    topics = sorted(t for t in state.rows if not match or match.lower() in state.rows[t].name.lower())
    for topic in topics[:limit]:
        r = state.rows[topic]
        v = f"{r.value:,.3f}".rstrip("0").rstrip(".") if isinstance(r.value, float) else ("—" if r.value is None else str(r.value))
        q = Text(r.validity + (" " + ",".join(r.flags) if r.flags else ""), style=QSTYLE.get(r.validity, ""))
        table.add_row(r.name, v, r.unit, q, f"{now - r.ts:5.1f}s" if r.ts else "-")
    gws = ", ".join(
        f"{gw}: {s.get('state')} ({sum(1 for d in (s.get('devices') or {}).values() if d.get('connected'))}/"
        f"{len(s.get('devices') or {})} devices up)"
        for gw, s in sorted(state.status.items())
    ) or "no gateway status yet"
    more = (f" (showing {min(limit, len(topics))} of {len(topics)}; --filter BAY or a bigger terminal for the rest)"
            if len(topics) > limit else "")
    more += f" matching {match!r}" if match else ""
    footer = Text(f"{gws} · {len(state.rows)} measurements{more} · {state.received} values received")
    return Group(table, footer)


class Watcher:
    """Subscribes and keeps a :class:`WatchState`; the CLI renders it."""

    def __init__(self, url: str, prefix: str = "gridgate/v1", protocol: str = "3.1.1") -> None:
        self.host, self.port, self.tls = parse_url(url)
        self.prefix = prefix
        self.state = WatchState()
        self.client = gmqtt.Client(f"gridgate-watch-{int(time.time() * 1000) % 100000}")
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.version = gmqtt.constants.MQTTv311 if protocol == "3.1.1" else gmqtt.constants.MQTTv50

    def _on_connect(self, client, flags, rc, properties) -> None:
        client.subscribe(f"{self.prefix}/+/catalog/#", qos=1)
        client.subscribe(f"{self.prefix}/+/meas/#", qos=1)
        client.subscribe(f"{self.prefix}/+/status", qos=1)

    def _on_message(self, client, topic, payload, qos, properties) -> int:
        self.state.on_message(topic, payload)
        return 0

    async def start(self, timeout: float = 5.0) -> None:
        """Connect; a port that is not an MQTT broker (no CONNACK) is an error after ``timeout`` s, not a hang."""
        try:
            await asyncio.wait_for(self.client.connect(self.host, self.port, ssl=self.tls, version=self.version), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise ConnectionError(f"no MQTT broker answered on {self.host}:{self.port} within {timeout:g} s "
                                  "(is it an MQTT port? check --broker)") from None

    async def stop(self) -> None:
        await self.client.disconnect()


async def watch(url: str, duration: float | None, prefix: str = "gridgate/v1", protocol: str = "3.1.1",
                live: bool = True, match: str | None = None) -> WatchState:
    """Live table until ``duration`` (or cancelled); not live: collect, then the caller prints the full table."""
    w = Watcher(url, prefix, protocol)
    await w.start(timeout=5.0 if duration is None else max(0.5, min(5.0, duration)))
    try:
        end = None if duration is None else time.monotonic() + duration
        if live:
            with Live(render(w.state, match=match), refresh_per_second=4, transient=False) as lv:
                while end is None or time.monotonic() < end:
                    await asyncio.sleep(0.25)
                    lv.update(render(w.state, match=match))
        else:
            try:
                await (asyncio.sleep(duration) if duration is not None else asyncio.Event().wait())
            except asyncio.CancelledError:
                pass  # Ctrl-C / SIGTERM: still print what arrived
    finally:
        try:
            await asyncio.wait_for(w.stop(), 3)
        except (asyncio.TimeoutError, OSError):
            pass
    return w.state
