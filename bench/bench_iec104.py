"""IEC 60870-5-104 speed, side by side with DNP3 in the same run: general interrogation throughput
of 2,000 points and event latency from a change at the RTU to MQTT (p50/p99).

    python bench/bench_iec104.py            # full run (~40 s, DNP3 included)
    python bench/bench_iec104.py --quick    # smaller figures

1. GI of 2,000 M_ME_TF_1 points: the emulated RTU (own process, c104 server) answers C_IC_NA_1;
   the gateway's driver (c104 client) asks and waits until all 2,000 Readings arrived; points/s.
   DNP3 figure: bench_dnp3's integrity poll of 2,000 analogs (our master, same machine, same run).
2. Latency: Iec104Rtu.update() → spontaneous M_ME_TF_1 → driver → normaliser → Mosquitto → a
   gmqtt subscriber; p50/p99 over N events spaced 20 ms. DNP3: bench_dnp3's unsolicited path.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_dnp3  # noqa: E402
from bench.support import Child, gateway_on, load_average, mqtt_latencies_ms  # noqa: E402
from gateway.pipeline import Reading  # noqa: E402
from gateway.southbound.iec104 import Iec104Source  # noqa: E402
from tests.iec104.support import device  # noqa: E402


def floats(n: int) -> list[dict]:
    return [{"name": f"a{i}", "ioa": 1 + i, "type": "M_ME_TF_1",
             "measurement": {"equipment": "S1/F1/CB1", "type": "ThreePhaseActivePower"}} for i in range(n)]


def _rtu_proc(n_points: int, port: int, conn) -> None:
    from devices.iec104.outstation import Iec104Rtu

    rtu = Iec104Rtu(device(points=floats(n_points), port=port, iec104={"common_address": 7}))
    rtu.start()
    for i in range(n_points):
        rtu.update(f"a{i}", float(i), 0, time.time())
    conn.send(rtu.port)
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            break
        if msg[0] == "burst":
            _, k, spacing = msg
            sent = []
            base = round(time.time(), 3)
            for j in range(k):
                # a unique source time identifies the event downstream; near the real time, since the gateway
                # does not believe time tags that jump back behind the point's newest (max_time_skew)
                ts = base + j * 0.001
                sent.append((time.time(), round(ts, 3)))
                rtu.update("a0", 1000.0 + j, 0, ts)
                time.sleep(spacing)
            time.sleep(0.5)
            conn.send(sent)
    rtu.stop()


def rtu(n_points: int) -> Child:
    """An RTU of ``n_points`` floats in a forked process: ``.port``, ``.ask("burst", k, spacing)``, ``.close()``."""
    from gateway.runtime import free_port

    return Child(_rtu_proc, n_points, free_port())


async def gi_throughput(n_points: int, gis: int) -> dict:
    with rtu(n_points) as remote:
        src = Iec104Source(device(points=floats(n_points), port=remote.port, timeout=10.0,
                                  iec104={"common_address": 7, "clock_sync": False}))
        got: list[Reading] = []
        task = asyncio.create_task(src.run(got.append))
        while len(got) < n_points:  # the GI on connect
            await asyncio.sleep(0.05)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for k in range(gis):
            target = n_points * (k + 2)
            await src._call(src._gi, timeout=30)
            while len(got) < target:
                await asyncio.sleep(0.002)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return {"points_per_s": n_points * gis / dt, "gi_ms": dt / gis * 1000, "driver_cpu_ms_per_gi": cpu / gis * 1000}


async def latency(n: int) -> dict:
    with rtu(1) as remote:
        dev = device(points=floats(1), port=remote.port, iec104={"common_address": 7}).model_dump(mode="json")
        async with gateway_on(dev) as (gw, sub):
            src = gw.sources[0]
            for _ in range(200):
                if src.connected and src.status_counters()["general_interrogations"]:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            sent = await asyncio.get_running_loop().run_in_executor(None, remote.ask, "burst", n, 0.02)
            await asyncio.sleep(0.5)
            lat = mqtt_latencies_ms(sent, sub)
            return {"events": n, "to_mqtt": len(lat), "p50_ms": bench_dnp3.pct(lat, 50), "p99_ms": bench_dnp3.pct(lat, 99)}


async def main(quick: bool) -> None:
    n_ev = 100 if quick else 500
    polls = 5 if quick else 20
    gi = await gi_throughput(2000, polls)
    integ = await bench_dnp3.integrity(2000, polls, peer=False)
    lat = await latency(n_ev)
    dlat = await bench_dnp3.latency(n_ev)
    print(f"general interrogation, 2000 points   IEC 104: {gi['points_per_s']:>9,.0f} points/s ({gi['gi_ms']:.0f} ms per GI, "
          f"driver CPU {gi['driver_cpu_ms_per_gi']:.0f} ms per GI)")
    print(f"integrity poll, 2000 points          DNP3:    {integ['ours']['points_per_s']:>9,.0f} points/s "
          f"({integ['ours']['poll_ms']:.0f} ms per poll)")
    print(f"event latency change→MQTT            IEC 104: p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms "
          f"({lat['to_mqtt']}/{lat['events']} events)")
    print(f"event latency change→MQTT            DNP3:    p50 {dlat['mqtt_p50_ms']:.2f} ms, p99 {dlat['mqtt_p99_ms']:.2f} ms "
          f"({dlat['to_mqtt']}/{dlat['events']} events)")
    print(f"load average {load_average()}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer events and interrogations (~15 s)")
    asyncio.run(main(ap.parse_args().quick))
