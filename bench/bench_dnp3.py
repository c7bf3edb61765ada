"""DNP3 speed: event latency to MQTT, integrity-poll throughput, CPU per 1,000 events.

    PYTHONPATH=. python bench/bench_dnp3.py            # full run (~30 s)
    PYTHONPATH=. python bench/bench_dnp3.py --quick    # smaller figures

1. Latency: Dnp3Outstation.update() → unsolicited g32v7 → Dnp3Source → gateway normaliser →
   Mosquitto → a gmqtt subscriber (all on 127.0.0.1, outstation in its own process so the two
   stacks do not share a GIL). p50/p99 over N events spaced 20 ms; also to the emitted Reading.
2. Integrity polls of 2,000 analogs (multi-fragment): points/s with our master and with
   yadnp3's master polling the same outstation.
3. CPU per 1,000 events: outstation process and master process separately (process_time).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from datetime import datetime

sys.path.insert(0, ".")

from devices.dnp3.outstation import Dnp3Outstation  # noqa: E402
from gateway.pipeline import Reading  # noqa: E402
from gateway.southbound.dnp3.master import Dnp3Source  # noqa: E402
from tests.dnp3.peer import YMaster, device  # noqa: E402


def analogs(n: int, event_class: int = 1):
    return [{"name": f"a{i}", "group": "analog", "index": i, "event_class": event_class} for i in range(n)]


# ---------------------------------------------------------------- outstation process
def _outstation_proc(n_points: int, conn, cls: int) -> None:
    """Serve an outstation; on ("burst", k, spacing) emit k events and report (t_sent list, cpu)."""

    async def main() -> None:
        os_ = Dnp3Outstation(device(analogs(n_points, cls), event_buffer={"class1": 5000, "class2": 5000, "class3": 5000}))
        await os_.start()
        for i in range(n_points):
            os_.update(f"a{i}", float(i), 0, time.time())
        conn.send(os_.port)
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            if msg[0] == "stop":
                break
            if msg[0] == "burst":
                _, k, spacing = msg
                sent = []
                cpu0 = time.process_time()
                for j in range(k):
                    ts = 1_790_000_000 + j * 0.001  # unique source time identifies the event downstream
                    sent.append((time.time(), round(ts, 3)))
                    os_.update("a0", 1000.0 + j, 0, ts)
                    await asyncio.sleep(spacing)
                await asyncio.sleep(0.5)
                conn.send((sent, time.process_time() - cpu0, os_.stats))
            if msg[0] == "cpu":
                conn.send(time.process_time())
        await os_.stop()

    asyncio.run(main())


class Remote:
    def __init__(self, n_points: int, cls: int = 1) -> None:
        self.parent, child = mp.Pipe()
        self.proc = mp.get_context("fork").Process(target=_outstation_proc, args=(n_points, child, cls), daemon=True)
        self.proc.start()
        self.port = self.parent.recv()

    def burst(self, k: int, spacing: float):
        self.parent.send(("burst", k, spacing))
        return self.parent.recv()

    def cpu(self) -> float:
        self.parent.send(("cpu",))
        return self.parent.recv()

    def close(self) -> None:
        self.parent.send(("stop",))
        self.proc.join(5)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# ---------------------------------------------------------------- 1. latency to MQTT
async def latency(n: int) -> dict:
    from gateway.app import Gateway, GatewayOptions
    from gateway.config import Config
    from tests.support.mosquitto import Mosquitto
    from tests.support.mqtt import Collector

    remote = Remote(4)
    try:
        with Mosquitto() as mq:
            dev = device(analogs(4)).model_dump(mode="json") | {"port": remote.port}
            for p in dev["points"]:
                p["measurement"]["equipment"] = "S1/F1/CB1"
                p["measurement"]["type"] = "ThreePhaseActivePower"
            dev["points"] = dev["points"][:1]
            cfg = Config.model_validate({
                "site": {"name": "B"}, "gateway": {"id": "gw-b"},
                "substations": [{"name": "S1", "bays": [{"name": "F1", "equipment": [{"name": "CB1", "type": "Breaker"}]}]}],
                "devices": [dev],
            })
            async with Collector(mq.port, ["gridgate/v1/gw-b/meas/#"]) as sub:
                async with Gateway(cfg, GatewayOptions(broker=mq.url, status_interval=5.0)) as gw:
                    src = gw.sources[0]
                    seen: dict[float, float] = {}
                    for _ in range(200):
                        if src.connected and src.stats["integrity_polls"] and src.iin & 0xF0 == 0:
                            break
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.5)
                    # tap the Readings (driver-only latency) without changing the pipeline
                    emit_orig = src._emit

                    def tap(r: Reading) -> None:
                        if r.event:
                            seen[round(r.timestamp, 3)] = time.time()
                        emit_orig(r)

                    src._emit = tap
                    sent, cpu_os, st = await asyncio.get_running_loop().run_in_executor(None, remote.burst, n, 0.02)
                    await asyncio.sleep(0.5)
                    got: dict[float, float] = {}
                    for m in sub.messages:
                        if "/meas/" in m.topic:
                            ts = datetime.fromisoformat(m.json["timeStamp"].replace("Z", "+00:00")).timestamp()
                            got[round(ts, 3)] = m.at
                    lat_mqtt = [(got[ts] - t) * 1000 for t, ts in sent if ts in got]
                    lat_read = [(seen[ts] - t) * 1000 for t, ts in sent if ts in seen]
                    return {
                        "events": n, "to_mqtt": len(lat_mqtt), "to_reading": len(lat_read),
                        "mqtt_p50_ms": pct(lat_mqtt, 50), "mqtt_p99_ms": pct(lat_mqtt, 99),
                        "reading_p50_ms": pct(lat_read, 50), "reading_p99_ms": pct(lat_read, 99),
                        "unsol_retried": st["unsol_retried"],
                    }
    finally:
        remote.close()


async def start_master(src: Dnp3Source, got: list[Reading]) -> asyncio.Task:
    """Run our master into ``got`` and wait (up to 10 s) until its startup sequence is done."""
    task = asyncio.create_task(src.run(got.append))
    for _ in range(200):
        if src.connected and src.stats["integrity_polls"] and src.iin & 0xF0 == 0:
            break
        await asyncio.sleep(0.05)
    return task


def poll_rates(n_points: int, polls: int, dt: float, cpu_master: float, cpu_outstation: float) -> dict:
    return {"points_per_s": n_points * polls / dt, "poll_ms": dt / polls * 1000,
            "master_cpu_ms_per_poll": cpu_master / polls * 1000, "outstation_cpu_ms_per_poll": cpu_outstation / polls * 1000}


# ---------------------------------------------------------------- 2. integrity throughput
async def integrity(n_points: int, polls: int) -> dict:
    remote = Remote(n_points, cls=0)
    try:
        src = Dnp3Source(device(analogs(n_points, 0)).model_copy(update={"port": remote.port}))
        got: list[Reading] = []
        task = await start_master(src, got)
        cpu0, os0, t0 = time.process_time(), remote.cpu(), time.perf_counter()
        for _ in range(polls):
            await src.integrity_poll()
        dt = time.perf_counter() - t0
        ours = poll_rates(n_points, polls, dt, time.process_time() - cpu0, remote.cpu() - os0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

        ym = YMaster(remote.port, asyncio.get_running_loop())
        await ym.data.wait_for(lambda s: len(s) >= n_points, 10)
        cpu0, os0, t0 = time.process_time(), remote.cpu(), time.perf_counter()
        for k in range(polls):
            target = n_points * (k + 2)
            ym.scan_classes(0)
            await ym.data.wait_for(lambda s: len(s) >= target, 10)
        dt = time.perf_counter() - t0
        theirs = poll_rates(n_points, polls, dt, time.process_time() - cpu0, remote.cpu() - os0)
        ym.close()
        return {"points": n_points, "polls": polls, "ours": ours, "yadnp3_master": theirs}
    finally:
        remote.close()


# ---------------------------------------------------------------- 3. CPU per 1,000 events
async def cpu_per_events(n: int) -> dict:
    remote = Remote(4)
    try:
        src = Dnp3Source(device(analogs(4)).model_copy(update={"port": remote.port}))
        got: list[Reading] = []
        task = await start_master(src, got)
        await asyncio.sleep(0.3)
        before = len([r for r in got if r.event])
        cpu0 = time.process_time()
        sent, cpu_os, st = await asyncio.get_running_loop().run_in_executor(None, remote.burst, n, 0.0005)
        cpu_m = time.process_time() - cpu0
        events = len([r for r in got if r.event]) - before
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return {"events_sent": n, "events_received": events, "unsolicited_fragments": src.stats["unsolicited"],
                "outstation_cpu_ms_per_1000": cpu_os / n * 1000 * 1000, "master_cpu_ms_per_1000": cpu_m / n * 1000 * 1000}
    finally:
        remote.close()


async def main(quick: bool) -> None:
    lat = await latency(100 if quick else 500)
    print(f"latency update→MQTT  ({lat['to_mqtt']}/{lat['events']} events): p50 {lat['mqtt_p50_ms']:.2f} ms, p99 {lat['mqtt_p99_ms']:.2f} ms")
    print(f"latency update→Reading ({lat['to_reading']}/{lat['events']}): p50 {lat['reading_p50_ms']:.2f} ms, p99 {lat['reading_p99_ms']:.2f} ms")
    integ = await integrity(2000, 5 if quick else 20)
    for who in ("ours", "yadnp3_master"):
        r = integ[who]
        print(f"integrity 2000 pts, {who:14s}: {r['points_per_s']:,.0f} points/s ({r['poll_ms']:.1f} ms/poll; "
              f"CPU master {r['master_cpu_ms_per_poll']:.1f} ms, outstation {r['outstation_cpu_ms_per_poll']:.1f} ms per poll)")
    cpu = await cpu_per_events(1000 if quick else 5000)
    print(f"CPU per 1000 events: outstation {cpu['outstation_cpu_ms_per_1000']:.0f} ms, master {cpu['master_cpu_ms_per_1000']:.0f} ms "
          f"({cpu['events_received']}/{cpu['events_sent']} events in {cpu['unsolicited_fragments']} unsolicited fragments)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    asyncio.run(main(ap.parse_args().quick))
