"""An optional Prometheus endpoint (``--metrics HOST:PORT``): the status topic's figures, scraped.

One source of truth: the collector reads the same snapshots the status topic publishes
(``Gateway.device_states()`` and ``Gateway.stats()``) at scrape time, on the event loop (served by
aiohttp in-loop, so no thread reads the gateway's state while the loop changes it). The histograms
(publish latency, event-loop lag) are the status topic's ``gateway.histogram.Buckets``; a snapshot
without an ``eventLoopLag`` (the emulator) gets the lag measured here, the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.utils import floatToGoString

from gateway.histogram import LAG_BUCKETS, Buckets, from_dict, measure_loop_lag

LOOP_PERIOD = 0.25


def parse_listen(v: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (loopback unless a host is named)."""
    host, _, port = v.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics {v!r}: expected PORT or HOST:PORT, e.g. 127.0.0.1:9108")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class _StatusCollector:
    """Prometheus families from a status snapshot: ``snapshot() -> (device_states, stats)``."""

    def __init__(self, source: str, snapshot: Callable[[], tuple[dict, dict]], lag: Buckets | None = None) -> None:
        self.source, self.snapshot = source, snapshot
        self.lag = lag or Buckets(LAG_BUCKETS)  # used when the snapshot carries no eventLoopLag

    def collect(self) -> Iterable[Any]:
        devices, stats = self.snapshot()
        up = GaugeMetricFamily("gridgate_device_connected", "1 while the device's association is up",
                               labels=["device", "protocol"])
        polls = CounterMetricFamily("gridgate_device_polls", "successful polls or exchanges", labels=["device"])
        fails = CounterMetricFamily("gridgate_device_failures", "failed polls or exchanges", labels=["device"])
        recon = CounterMetricFamily("gridgate_device_reconnects", "reconnections", labels=["device"])
        proto = CounterMetricFamily("gridgate_device_protocol", "protocol counters of the driver (status topic "
                                    "devices.*.counters)", labels=["device", "counter"])
        for name, d in devices.items():
            up.add_metric([name, d.get("protocol", "")], 1.0 if d.get("connected") else 0.0)
            for fam, key in ((polls, "polls"), (fails, "failures"), (recon, "reconnects")):
                if isinstance(d.get(key), (int, float)):
                    fam.add_metric([name], d[key])
            for counter, v in (d.get("counters") or {}).items():
                items = v.items() if isinstance(v, dict) else [("", v)]
                for sub, x in items:
                    if isinstance(x, (int, float)) and not isinstance(x, bool):
                        proto.add_metric([name, f"{counter}.{sub}" if sub else counter], x)
        yield from (up, polls, fails, recon, proto)
        simple = {"readings": "readings from the drivers", "published": "values published after deadband",
                  "suppressed": "values suppressed by deadband", "unknown": "readings of unknown points",
                  "sent": "MQTT messages sent", "pipelineErrors": "readings lost to a pipeline error",
                  "reconnects": "broker reconnections"}
        for key, help_ in simple.items():
            if isinstance(stats.get(key), (int, float)):
                c = CounterMetricFamily(f"gridgate_{_snake(key)}", help_)
                c.add_metric([], stats[key])
                yield c
        for key, help_ in (("queued", "values waiting for the broker (memory queue or spool)"),
                           ("seq", "last sequence number given to a value")):
            if isinstance(stats.get(key), (int, float)):
                g = GaugeMetricFamily(f"gridgate_{key}", help_)
                g.add_metric([], stats[key])
                yield g
        dropped = CounterMetricFamily("gridgate_dropped", "values dropped, by reason (never silent)", labels=["reason"])
        for reason, n in (stats.get("droppedBy") or {}).items():
            dropped.add_metric([str(reason)], n)
        yield dropped
        spool = stats.get("spool")
        if isinstance(spool, dict):
            for key, name, help_ in (("values", "gridgate_spool_depth", "values in the spool not yet delivered"),
                                     ("bytes", "gridgate_spool_bytes", "bytes the spool file holds for them")):
                g = GaugeMetricFamily(name, help_)
                g.add_metric([], spool.get(key, 0))
                yield g
            g = GaugeMetricFamily("gridgate_spool_writable", "1 while the spool can write (0: values wait in memory)")
            g.add_metric([], 1.0 if spool.get("state") == "ok" else 0.0)
            yield g
        if isinstance(stats.get("oldestQueuedAge"), (int, float)):
            g = GaugeMetricFamily("gridgate_oldest_queued_age_seconds", "how long the oldest value waiting for the "
                                  "broker (queue, spool or unacknowledged) has waited; 0 when none")
            g.add_metric([], stats["oldestQueuedAge"])
            yield g
        if isinstance(stats.get("publishLatency"), dict):
            yield _histogram("gridgate_publish_latency_seconds", "reading received → PUBLISH written (QoS 0) or "
                             "PUBACK received (QoS 1)", stats["publishLatency"])
        lag = stats.get("eventLoopLag")
        if not isinstance(lag, dict):
            lag = self.lag.as_dict()
        yield _histogram("gridgate_event_loop_lag_seconds", "how late a 0.25 s timer fires (event-loop stalls)", lag)


def _histogram(name: str, help_: str, d: dict) -> HistogramMetricFamily:
    h = HistogramMetricFamily(name, help_)
    h.add_metric([], [(floatToGoString(float(le)), n) for le, n in from_dict(d)], sum_value=d.get("sum", 0.0))
    return h


def _snake(s: str) -> str:
    """pipelineErrors → pipeline_errors (counter families get their _total suffix from the client)."""
    return "".join("_" + c.lower() if c.isupper() else c for c in s)


class MetricsServer:
    """``/metrics`` over aiohttp on the running loop, plus the event-loop lag probe."""

    def __init__(self, listen: str, snapshot: Callable[[], tuple[dict, dict]], source: str = "gateway") -> None:
        self.host, self.port = parse_listen(listen)
        self.registry = CollectorRegistry()
        self.lag = Buckets(LAG_BUCKETS)
        self.registry.register(_StatusCollector(source, snapshot, self.lag))  # type: ignore[arg-type]
        self._runner: Any = None
        self._probe: asyncio.Task | None = None

    async def start(self) -> "MetricsServer":
        from aiohttp import web

        async def metrics(_request: web.Request) -> web.Response:
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise OSError(f"--metrics {self.host}:{self.port}: cannot listen ({e.strerror or e}); "
                          "choose another port") from None
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._probe = asyncio.create_task(measure_loop_lag(self.lag, LOOP_PERIOD), name="metrics-loop-lag")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
