"""The figures behind /metrics move with the gateway: spool depth and oldest queued age rise while the
broker is away and fall to 0 after, the publish latency histogram counts deliveries (the spooled ones
with the outage in their latency), and the status topic carries the same figures (one source)."""

from __future__ import annotations

import asyncio
import urllib.request

import yaml
from prometheus_client.parser import text_string_to_metric_families

from devices.emulator import Emulator
from devices.mosquitto import Mosquitto
from gateway.app import Gateway, GatewayOptions, status_topic
from gateway.config import load_config
from gateway.histogram import Buckets
from gateway.metrics import MetricsServer, _StatusCollector
from tests.support.mosquitto import free_port
from tests.support.mqtt import Collector
from tests.support.sites import modbus_site


async def scrape(url: str) -> dict[str, float]:
    """Every sample of /metrics, keyed ``name{label=value,...}`` (parsed by prometheus_client.parser)."""
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


async def test_spool_depth_age_and_latency_move_with_a_broker_outage(tmp_path) -> None:
    _, path = modbus_site(tmp_path, poll="200ms")
    data = yaml.safe_load(path.read_text())
    data["gateway"]["northbound"].update(spool={"path": str(tmp_path / "spool.db")}, analog_qos=1,
                                         integrity_interval="1s")  # values keep coming although the signals are constant
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = load_config(path)
    broker = Mosquitto().start()
    try:
        async with Emulator(cfg):
            gw = Gateway(cfg, GatewayOptions(broker=broker.url, status_interval=1.0))
            await gw.start()
            metrics = await MetricsServer(f"127.0.0.1:{free_port()}", lambda: (gw.device_states(), gw.stats())).start()
            m: dict[str, float] = {}
            try:
                async def sample() -> dict[str, float]:
                    m.update(await scrape(metrics.url))
                    return m

                async def wait(cond, timeout: float, what: str) -> None:  # noqa: ANN001
                    for _ in range(int(timeout / 0.3)):
                        if cond(await sample()):
                            return
                        await asyncio.sleep(0.3)
                    raise AssertionError(f"{what}: {m}")

                # (the loop-lag probe observes every 0.25 s: a fast start may deliver before its first sample)
                await wait(lambda m: m.get("gridgate_publish_latency_seconds_count", 0) >= 7 and
                           m["gridgate_spool_depth"] == 0 and m.get("gridgate_event_loop_lag_seconds_count", 0) >= 1,
                           30, "live values delivered")
                live = m["gridgate_publish_latency_seconds_count"]
                assert m["gridgate_publish_latency_seconds_bucket{le=1.0}"] == live  # live: well under a second
                assert m["gridgate_oldest_queued_age_seconds"] < 1.0 and m["gridgate_spool_writable"] == 1.0
                assert m["gridgate_event_loop_lag_seconds_count"] >= 1

                broker.stop()
                await wait(lambda m: m["gridgate_spool_depth"] >= 7 and m["gridgate_oldest_queued_age_seconds"] >= 2.0,
                           30, "values spooled while the broker is away")
                assert m["gridgate_spool_bytes"] > 0
                assert m["gridgate_publish_latency_seconds_count"] - live <= 7  # nothing acknowledged meanwhile

                broker.start()
                async with Collector(broker.port, [status_topic(cfg)]) as sub:
                    await wait(lambda m: m["gridgate_spool_depth"] == 0 and m["gridgate_oldest_queued_age_seconds"] == 0
                               and m["gridgate_publish_latency_seconds_count"] > live + 7, 30, "backlog drained")
                    # the spooled values waited out the outage: some latencies over a second
                    assert m["gridgate_publish_latency_seconds_bucket{le=1.0}"] < m["gridgate_publish_latency_seconds_count"]
                    assert m["gridgate_publish_latency_seconds_sum"] >= 2.0
                    # the status topic carries the same figures (it is published from the same snapshot)
                    await sub.wait_for(lambda: (s := sub.latest("/status")) and s["stats"]["spool"]["values"] == 0
                                       and s["stats"]["publishLatency"]["count"] > live + 7, 15, "status after the drain")
                    st = sub.latest("/status")["stats"]
                    assert st["oldestQueuedAge"] == 0 and st["publishLatency"]["+Inf"] == st["publishLatency"]["count"]
                    assert st["publishLatency"]["1"] < st["publishLatency"]["count"]
                    assert st["eventLoopLag"]["count"] >= 1
            finally:
                await metrics.stop()
                await gw.stop()
    finally:
        broker.stop()


async def test_qos0_values_are_counted_in_the_publish_latency(tmp_path) -> None:
    """QoS 0 values leave by the publisher's batched write path: each one is counted when written."""
    _, path = modbus_site(tmp_path, poll="200ms")
    data = yaml.safe_load(path.read_text())
    data["gateway"]["northbound"].update(analog_qos=0, integrity_interval="1s")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = load_config(path)
    with Mosquitto() as broker:
        async with Emulator(cfg), Collector(broker.port, [f"gridgate/v1/{cfg.gateway.id}/meas/#"]) as sub:
            gw = Gateway(cfg, GatewayOptions(broker=broker.url, status_interval=1.0))
            await gw.start()
            try:
                await sub.wait_for(lambda: len(sub.on("/meas/")) >= 30, 30, "30 values on MQTT")
                received = len(sub.on("/meas/"))
                count = gw.publisher.latency.count
                # every value a subscriber got was written (and counted) first; catalog and status are not values
                assert received <= count <= gw.normaliser.stats.published, (received, count)
                assert gw.publisher.latency.sum / count < 1.0  # live values: well under a second each
            finally:
                await gw.stop()


def test_the_collector_shows_exactly_the_status_figures() -> None:
    lat = Buckets((0.01, 1.0))
    for v in (0.005, 0.5, 3.0):
        lat.observe(v)
    stats = {"published": 3, "queued": 2, "oldestQueuedAge": 4.25, "publishLatency": lat.as_dict(),
             "eventLoopLag": Buckets((0.01,)).as_dict(), "spool": {"state": "unwritable", "values": 2, "bytes": 300},
             "droppedBy": {"queue_full": 1}}
    assert lat.as_dict() == {"count": 3, "sum": 3.505, "0.01": 1, "1": 2, "+Inf": 3}
    fams = {f.name: f for f in _StatusCollector("gateway", lambda: ({}, stats)).collect()}
    samples = {s.name + (f"{{le={s.labels['le']}}}" if "le" in s.labels else ""): s.value
               for f in fams.values() for s in f.samples}
    assert samples["gridgate_publish_latency_seconds_bucket{le=0.01}"] == 1
    assert samples["gridgate_publish_latency_seconds_bucket{le=1.0}"] == 2
    assert samples["gridgate_publish_latency_seconds_bucket{le=+Inf}"] == 3
    assert samples["gridgate_publish_latency_seconds_count"] == 3 and samples["gridgate_publish_latency_seconds_sum"] == 3.505
    assert samples["gridgate_spool_depth"] == 2 and samples["gridgate_spool_bytes"] == 300
    assert samples["gridgate_spool_writable"] == 0 and samples["gridgate_oldest_queued_age_seconds"] == 4.25
    assert samples["gridgate_event_loop_lag_seconds_count"] == 0 and samples["gridgate_queued"] == 2
