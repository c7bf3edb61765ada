"""Command round-trip latency per protocol (p50/p99), through the real gateway.

    python bench/bench_commands.py            # 200 commands per protocol (~1 min)
    python bench/bench_commands.py --quick    # 40 per protocol

A control room (raw-socket MQTT client) publishes ``…/cmd/{mRID}`` on a private Mosquitto; the
gateway checks the policy and operates the breaker on an emulated device (the emulator runs in
its own process, as in production, ticking every 50 ms); commands alternate close/open, one at a
time. Measured per protocol (Modbus coil FC5 direct, DNP3 CROB select-before-operate, IEC 61850
SBO-enhanced with CommandTermination):

* ``result``: publish → ``…/cmd/{mRID}/result`` received (the whole command path);
* ``driver``: time inside the driver's ``operate`` (the protocol exchange alone);
* ``measurement``: publish → the changed SwitchPosition received on ``…/meas/…`` (includes the
  emulated firmware's tick, mean 25 ms, and the device's reporting: Modbus read-back, DNP3
  unsolicited, IEC 61850 report).

Mosquitto runs with ``set_tcp_nodelay true``: with its default (false) a command from the
control room often waits ~40 ms in the broker (Nagle against the gateway's delayed ACK) before
the gateway sees it (``--broker-nagle`` shows it). Deployments should set it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import load_average  # noqa: E402
from gateway.app import Gateway, GatewayOptions  # noqa: E402
from tests.commands.site import CMD, GW, Room, mrid, request, site  # noqa: E402
from tests.support.mosquitto import Mosquitto, free_port  # noqa: E402

TARGETS = [("modbus", "mb1", "CB", "S1/T1/CB/SwitchPosition"),
           ("dnp3", "rtu1", "CB", "S1/F2/CB/SwitchPosition"),
           ("iec61850", "F1", "Pos", "S1/F1/CB1/SwitchPosition")]


def _emulator_proc(ports: dict[str, int], conn) -> None:
    from devices.emulator import Emulator

    async def main() -> None:
        async with Emulator(site(ports, gateway=False), tick=0.05):
            conn.send("ready")
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop

    asyncio.run(main())


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _summary(xs: list[float]) -> dict:
    ms = [x * 1000 for x in xs]
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(_pct(ms, 99), 2),
            "max_ms": round(max(ms), 2)}


async def run(n: int, nodelay: bool = True) -> dict:
    ports = {"mb1": free_port(), "rtu1": free_port(), "F1": free_port()}
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_emulator_proc, args=(ports, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(20):
            raise RuntimeError("emulator process did not start")
        parent.recv()
        with Mosquitto(extra="set_tcp_nodelay true\n" if nodelay else "") as broker:
            cfg = site(ports, gateway=True)
            gw = Gateway(cfg, GatewayOptions(broker=broker.url, status_interval=60.0))
            driver_times: dict[str, list[float]] = {}
            for s in gw.sources:  # time the protocol exchange inside the gateway
                inner, times = s.operate, driver_times.setdefault(s.device, [])

                async def timed(point, value, mode="direct", _inner=inner, _times=times):
                    t = time.perf_counter()
                    try:
                        return await _inner(point, value, mode)
                    finally:
                        _times.append(time.perf_counter() - t)

                s.operate = timed
            await gw.start()
            try:
                end = time.monotonic() + 15
                while not all(s.connected for s in gw.sources):
                    if time.monotonic() > end:
                        raise RuntimeError(f"devices not connected: {gw.device_states()}")
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # initial GI/integrity/poll settle
                out: dict = {}
                async with Room(broker.port, [f"{CMD}/+/result", f"gridgate/v1/{GW}/meas/#"], client_id="bench-room") as room:
                    for proto, dev, pt, topic in TARGETS:
                        m = mrid(cfg, dev, pt)
                        res_t, meas_t = [], []
                        driver_times[dev].clear()
                        for i in range(n):
                            value = 2 if i % 2 == 0 else 1
                            k = len(room.messages)
                            t0 = time.perf_counter()
                            res = await room.send(m, request(f"{proto}-{i}", value))
                            res_t.append(time.perf_counter() - t0)
                            if res["status"] != "done":
                                raise RuntimeError(f"{proto} command {i} not done: {res}")

                            def changed(ms, k=k, value=value):
                                return any(x.topic.endswith(topic) and json.loads(x.payload)["value"] == value for x in ms[k:])

                            if not await room.wait_for(changed, 5):
                                raise RuntimeError(f"{proto}: measurement {topic}={value} not published")
                            meas_t.append(time.perf_counter() - t0)
                            del room.messages[:]
                        out[proto] = {"result": _summary(res_t), "driver": _summary(driver_times[dev]),
                                      "measurement": _summary(meas_t)}
                return out
            finally:
                await gw.stop()
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 commands per protocol")
    ap.add_argument("-n", type=int, default=None, help="commands per protocol")
    ap.add_argument("--broker-nagle", action="store_true",
                    help="leave Mosquitto's set_tcp_nodelay at its default (false): shows the ~40 ms Nagle/delayed-ACK stall")
    args = ap.parse_args()
    n = args.n or (40 if args.quick else 200)
    res = asyncio.run(run(n, nodelay=not args.broker_nagle))
    print(f"{'protocol':10} {'what':12} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for proto, parts in res.items():
        for what, s in parts.items():
            print(f"{proto:10} {what:12} {s['n']:>4} {s['p50_ms']:>8} {s['p99_ms']:>8} {s['max_ms']:>8}")
    print(json.dumps(res))
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
