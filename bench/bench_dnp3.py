"""DNP3 speed: event latency to MQTT, integrity-poll throughput, CPU per 1,000 events.

    python bench/bench_dnp3.py            # full run (~30 s)
    python bench/bench_dnp3.py --quick    # smaller figures

1. Latency: Dnp3Outstation.update() → unsolicited g32v7 → Dnp3Source → gateway normaliser →
   Mosquitto → a gmqtt subscriber (all on 127.0.0.1, outstation in its own process so the two
   stacks do not share a GIL). p50/p99 over N events spaced 20 ms; also to the emitted Reading.
2. Integrity polls of 2,000 analogs (multi-fragment): points/s with our master and with
   yadnp3's master polling the same outstation (yadnp3, the independent peer, has wheels for x86_64
   only: without it that figure is left out, said so).
3. CPU per 1,000 events: outstation process and master process separately (process_time).
4. ``--emulator N``: the emulator (devices/emulator.py, in this process) running N firmware-fed
   outstations of ``--points`` analogs each, every point changing every 0.1 s tick (a ramp, deadband
   0: the worst case). Prints the emulator's CPU per tick and CPU % with no master connected, then with
   ``--masters`` of them polled by our master (Dnp3Source, in a child process: its CPU is not counted),
   and the events those masters received.

    python bench/bench_dnp3.py --emulator 1000 --points 100 --masters 5 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import Child, gateway_on, load_average, mqtt_latencies_ms  # noqa: E402
from devices.dnp3.outstation import Dnp3Outstation  # noqa: E402
from gateway.pipeline import Reading  # noqa: E402
from gateway.southbound.dnp3.master import Dnp3Source  # noqa: E402
from tests.dnp3.sites import device  # noqa: E402


def analogs(n: int, event_class: int = 1):
    return [{"name": f"a{i}", "group": "analog", "index": i, "event_class": event_class} for i in range(n)]


# ---------------------------------------------------------------- outstation process
def _outstation_proc(n_points: int, cls: int, conn) -> None:
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


def outstation(n_points: int, cls: int = 1) -> Child:
    """An outstation of ``n_points`` analogs (event class ``cls``) in a forked process: ``.port``,
    ``.ask("burst", k, spacing)``, ``.ask("cpu")``, ``.close()``."""
    return Child(_outstation_proc, n_points, cls)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# ---------------------------------------------------------------- 1. latency to MQTT
async def latency(n: int) -> dict:
    with outstation(1) as remote:  # one analog, as the gateway's site has: nothing unmapped in the integrity poll
        dev = device(analogs(1)).model_dump(mode="json") | {"port": remote.port}
        dev["points"][0]["measurement"] |= {"equipment": "S1/F1/CB1", "type": "ThreePhaseActivePower"}
        async with gateway_on(dev) as (gw, sub):
            src = gw.sources[0]
            await started(src)
            await asyncio.sleep(0.5)
            # tap the Readings (driver-only latency) without changing the pipeline
            seen: dict[float, float] = {}
            emit_orig = src._emit

            def tap(r: Reading) -> None:
                if r.event:
                    seen[round(r.timestamp, 3)] = time.time()
                emit_orig(r)

            src._emit = tap
            sent, cpu_os, st = await asyncio.get_running_loop().run_in_executor(None, remote.ask, "burst", n, 0.02)
            await asyncio.sleep(0.5)
            lat_mqtt = mqtt_latencies_ms(sent, sub)
            lat_read = [(seen[ts] - t) * 1000 for t, ts in sent if ts in seen]
            return {
                "events": n, "to_mqtt": len(lat_mqtt), "to_reading": len(lat_read),
                "mqtt_p50_ms": pct(lat_mqtt, 50), "mqtt_p99_ms": pct(lat_mqtt, 99),
                "reading_p50_ms": pct(lat_read, 50), "reading_p99_ms": pct(lat_read, 99),
                "unsol_retried": st["unsol_retried"],
            }


async def started(src: Dnp3Source) -> None:
    """Until (up to 10 s) the master's startup sequence is done: connected, integrity poll made, IIN restart bits clear."""
    for _ in range(200):
        if src.connected and src.stats["integrity_polls"] and src.iin & 0xF0 == 0:
            return
        await asyncio.sleep(0.05)


async def start_master(src: Dnp3Source, got: list[Reading]) -> asyncio.Task:
    """Run our master into ``got`` and wait (up to 10 s) until its startup sequence is done."""
    task = asyncio.create_task(src.run(got.append))
    await started(src)
    return task


def poll_rates(n_points: int, polls: int, dt: float, cpu_master: float, cpu_outstation: float) -> dict:
    return {"points_per_s": n_points * polls / dt, "poll_ms": dt / polls * 1000,
            "master_cpu_ms_per_poll": cpu_master / polls * 1000, "outstation_cpu_ms_per_poll": cpu_outstation / polls * 1000}


# ---------------------------------------------------------------- 2. integrity throughput
def yadnp3_master():  # noqa: ANN201 - the peer's class, or None
    """yadnp3's master (tests/dnp3/peer.py), or None with a note on stderr: it has wheels for x86_64 only."""
    try:
        import opendnp3  # noqa: F401
    except ImportError:
        print("yadnp3 (the independent DNP3 peer) is not installed (wheels for x86_64 only): its master's "
              "integrity figure is left out", file=sys.stderr)
        return None
    from tests.dnp3.peer import YMaster

    return YMaster


async def integrity(n_points: int, polls: int, peer: bool = True) -> dict:
    with outstation(n_points, cls=0) as remote:
        src = Dnp3Source(device(analogs(n_points, 0)).model_copy(update={"port": remote.port}))
        got: list[Reading] = []
        task = await start_master(src, got)
        cpu0, os0, t0 = time.process_time(), remote.ask("cpu"), time.perf_counter()
        for _ in range(polls):
            await src.integrity_poll()
        dt = time.perf_counter() - t0
        ours = poll_rates(n_points, polls, dt, time.process_time() - cpu0, remote.ask("cpu") - os0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        YMaster = yadnp3_master() if peer else None
        if YMaster is None:
            return {"points": n_points, "polls": polls, "ours": ours, "yadnp3_master": None}

        ym = YMaster(remote.port, asyncio.get_running_loop())
        await ym.data.wait_for(lambda s: len(s) >= n_points, 10)
        cpu0, os0, t0 = time.process_time(), remote.ask("cpu"), time.perf_counter()
        for k in range(polls):
            target = n_points * (k + 2)
            ym.scan_classes(0)
            await ym.data.wait_for(lambda s: len(s) >= target, 10)
        dt = time.perf_counter() - t0
        theirs = poll_rates(n_points, polls, dt, time.process_time() - cpu0, remote.ask("cpu") - os0)
        ym.close()
        return {"points": n_points, "polls": polls, "ours": ours, "yadnp3_master": theirs}


# ---------------------------------------------------------------- 3. CPU per 1,000 events
async def cpu_per_events(n: int) -> dict:
    with outstation(4) as remote:
        src = Dnp3Source(device(analogs(4)).model_copy(update={"port": remote.port}))
        got: list[Reading] = []
        task = await start_master(src, got)
        await asyncio.sleep(0.3)
        before = len([r for r in got if r.event])
        cpu0 = time.process_time()
        sent, cpu_os, st = await asyncio.get_running_loop().run_in_executor(None, remote.ask, "burst", n, 0.0005)
        cpu_m = time.process_time() - cpu0
        events = len([r for r in got if r.event]) - before
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return {"events_sent": n, "events_received": events, "unsolicited_fragments": src.stats["unsolicited"],
                "outstation_cpu_ms_per_1000": cpu_os / n * 1000 * 1000, "master_cpu_ms_per_1000": cpu_m / n * 1000 * 1000}


# ---------------------------------------------------------------- 4. the emulator's tick with N outstations
def emulator_site(devices: int, points: int, port_base: int | None = None) -> dict:
    """N DNP3 outstations on free ports, every analog a ramp that moves each 0.1 s tick (deadband 0)."""
    from bench.bench_gateway import site
    from bench.support import below_ephemeral

    data = site(devices * points, devices, 1.0)
    for d, port in zip(data["devices"], below_ephemeral(devices, port_base)):
        d["protocol"], d["kind"], d["port"] = "dnp3", "rtu", port
        for i, p in enumerate(d["points"]):
            for k in ("table", "address", "type"):
                p.pop(k)
            p |= {"group": "analog", "index": i, "event_class": 1, "deadband": 0.0}
    return data


def _masters_proc(devs: list[dict], seconds: float, conn) -> None:
    """Our master on each of ``devs`` (integrity poll, then unsolicited events) for ``seconds`` after all
    started; sends back (events received in the window, readings in all)."""
    from gateway.protocols.dnp3.config import Dnp3Device

    async def run() -> tuple[int, int]:
        got: list[Reading] = []
        srcs = [Dnp3Source(Dnp3Device.model_validate(d)) for d in devs]
        tasks = [await start_master(s, got) for s in srcs]
        conn.send("started")
        n0 = sum(r.event for r in got)
        await asyncio.sleep(seconds)
        n = sum(r.event for r in got) - n0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return n, len(got)

    conn.send(asyncio.run(run()))


async def emulator_ticks(devices: int, points: int, masters: int, seconds: float, port_base: int | None) -> None:
    import os

    from devices.emulator import Emulator
    from gateway.config import Config

    data = emulator_site(devices, points, port_base)
    cfg = Config.model_validate(data)
    t0 = time.perf_counter()
    async with Emulator(cfg) as emu:
        print(f"emulator: {devices} DNP3 outstations x {points} analogs = {devices * points:,} points, "
              f"started in {time.perf_counter() - t0:.1f} s")
        await asyncio.sleep(2.0)  # settle

        async def window(label: str, extra: str = "") -> None:
            k0, c0, w0 = emu.k, time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            ticks, cpu, wall = emu.k - k0, time.process_time() - c0, time.perf_counter() - w0
            print(f"  {label}: {ticks} ticks in {wall:.1f} s, CPU {cpu / wall * 100:.1f} %, "
                  f"{cpu / max(ticks, 1) * 1000:.2f} ms CPU per tick{extra} (load {os.getloadavg()[0]:.2f})")

        await window("no master")
        if masters:
            here, there = mp.Pipe()
            devs = [d | {"port": emu.devices[d["name"]].port} for d in data["devices"][:masters]]
            proc = mp.get_context("spawn").Process(target=_masters_proc, args=(devs, seconds + 1.0, there))
            proc.start()
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, here.recv) == "started"
            await asyncio.sleep(0.5)
            await window(f"{masters} masters")
            events, readings = await loop.run_in_executor(None, here.recv)
            proc.join(10)
            print(f"  the {masters} masters received {events:,} events in the last {seconds + 1:.0f} s "
                  f"({readings:,} readings in all; {points * masters * 10:,}/s changed on their outstations)")


async def main(quick: bool) -> None:
    lat = await latency(100 if quick else 500)
    print(f"latency update→MQTT  ({lat['to_mqtt']}/{lat['events']} events): p50 {lat['mqtt_p50_ms']:.2f} ms, p99 {lat['mqtt_p99_ms']:.2f} ms")
    print(f"latency update→Reading ({lat['to_reading']}/{lat['events']}): p50 {lat['reading_p50_ms']:.2f} ms, p99 {lat['reading_p99_ms']:.2f} ms")
    integ = await integrity(2000, 5 if quick else 20)
    for who in ("ours", "yadnp3_master"):
        r = integ[who]
        if r is None:
            continue
        print(f"integrity 2000 pts, {who:14s}: {r['points_per_s']:,.0f} points/s ({r['poll_ms']:.1f} ms/poll; "
              f"CPU master {r['master_cpu_ms_per_poll']:.1f} ms, outstation {r['outstation_cpu_ms_per_poll']:.1f} ms per poll)")
    cpu = await cpu_per_events(1000 if quick else 5000)
    print(f"CPU per 1000 events: outstation {cpu['outstation_cpu_ms_per_1000']:.0f} ms, master {cpu['master_cpu_ms_per_1000']:.0f} ms "
          f"({cpu['events_received']}/{cpu['events_sent']} events in {cpu['unsolicited_fragments']} unsolicited fragments)")
    print(f"load average {load_average()}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer events and polls (~10 s)")
    ap.add_argument("--emulator", type=int, default=0, metavar="N", help="only the emulator's tick with N outstations")
    ap.add_argument("--points", type=int, default=100, help="analogs per outstation (--emulator)")
    ap.add_argument("--masters", type=int, default=5, help="outstations polled by a master (--emulator)")
    ap.add_argument("--seconds", type=float, default=10.0, help="each measuring window (--emulator)")
    ap.add_argument("--port-base", type=int, default=None, help="outstations' ports from here up (--emulator)")
    a = ap.parse_args()
    if a.emulator:
        asyncio.run(emulator_ticks(a.emulator, a.points, a.masters, a.seconds, a.port_base))
    else:
        asyncio.run(main(a.quick))
