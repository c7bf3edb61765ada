"""Points/s one gateway process can poll and decode over Modbus TCP on loopback, and its RSS.

The emulated devices (devices.modbus.ModbusServer, N of them) run in a child process so the
gateway side gets its own core; the gateway runs N ModbusSource drivers in one event loop
with 10,000 points in total (40 % float32 word-swapped, 60 % scaled uint16, coalesced into
125-register blocks). Two runs:

- saturated: poll interval ~0, every driver polls back to back → max points/s;
- realistic: poll interval 1 s → CPU share of the gateway process for 10,000 points/s.

``--raw`` adds the same block reads through a 30-line asyncio MBAP client, to see how much
of the time pymodbus' client costs.

    python bench/bench_gateway_poll.py [--devices 10] [--points 10000] [--duration 5] [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support import load_average  # noqa: E402
from gateway.pipeline import Reading  # noqa: E402
from gateway.protocols.modbus.config import ModbusDevice  # noqa: E402
from gateway.southbound.modbus.driver import ModbusSource  # noqa: E402
from gateway.southbound.modbus.plan import plan_device  # noqa: E402

REGS = 4000  # holding registers per emulated device


def device_cfg(i: int, port: int, n_points: int, poll: float) -> ModbusDevice:
    pts, addr = [], 0
    for k in range(n_points):
        f32 = k % 5 < 2
        m = {"equipment": "S/B/E", "type": "Voltage", "name": f"p{k}"}
        if f32:
            pts.append(dict(name=f"p{k}", table="holding", address=addr, type="float32", word_order="little", measurement=m))
            addr += 2
        else:
            pts.append(dict(name=f"p{k}", table="holding", address=addr, type="uint16", scale=0.1, measurement=m))
            addr += 1
    return ModbusDevice.model_validate(
        dict(name=f"dev{i}", kind="meter", protocol="modbus", port=port, poll_interval=poll, timeout=2.0, points=pts)
    )


# ---------------------------------------------------------------- child: the devices


async def serve(n: int) -> None:
    from devices.modbus import ArrayDataModel, ModbusServer

    servers = []
    for _ in range(n):
        m = ArrayDataModel(holding=REGS)
        m.set_registers("holding", 0, b"".join(struct.pack(">H", (a * 7) & 0xFFFF) for a in range(REGS)))
        s = ModbusServer(m, max_connections=4)
        await s.start()
        servers.append(s)
        print(f"PORT {s.port}", flush=True)
    print("READY", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- parent: the gateway


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Count:
    def __init__(self) -> None:
        self.n = 0
        self.bad = 0

    def __call__(self, r: Reading) -> None:
        self.n += 1
        if r.quality:
            self.bad += 1


async def run_drivers(ports: list[int], per_dev: int, poll: float, duration: float) -> dict:
    rss0 = rss_mb()
    devs = [device_cfg(i, p, per_dev, poll) for i, p in enumerate(ports)]
    rss_cfg = rss_mb()
    srcs = [ModbusSource(d) for d in devs]
    rss_src = rss_mb()
    count = Count()
    tasks = [asyncio.create_task(s.run(count)) for s in srcs]
    await asyncio.sleep(max(1.0, 2 * poll))  # connect, warm up
    n0, r0 = count.n, sum(s.counters["requests"] for s in srcs)
    ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.sleep(duration)
    ru1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    n1, r1 = count.n, sum(s.counters["requests"] for s in srcs)
    rss = rss_mb()
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    el = t1 - t0
    return dict(
        points_s=(n1 - n0) / el,
        requests_s=(r1 - r0) / el,
        cpu_pct=100 * cpu / el,
        us_per_point=1e6 * cpu / max(1, n1 - n0),
        bad=count.bad,
        rss_mb=rss,
        cfg_mb=rss_cfg - rss0,
        drivers_mb=rss_src - rss_cfg,
        blocks=sum(len(s.blocks) for s in srcs),
        failures=sum(s.state.failures for s in srcs),
    )


async def raw_reads(ports: list[int], per_dev: int, duration: float) -> dict:
    """The same block reads through a minimal MBAP client (sequential per device, like the driver)."""
    blocks = [plan_device(device_cfg(i, p, per_dev, 1.0)) for i, p in enumerate(ports)]
    done = 0

    async def one(port: int, bl) -> None:
        nonlocal done
        r, w = await asyncio.open_connection("127.0.0.1", port)
        tid = 0
        try:
            while True:
                for b in bl:
                    tid = (tid + 1) & 0xFFFF
                    w.write(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, b.start, b.count))
                    head = await r.readexactly(7)
                    _, _, length, _ = struct.unpack(">HHHB", head)
                    pdu = await r.readexactly(length - 1)
                    regs = struct.unpack(f">{pdu[1] // 2}H", pdu[2:])
                    assert len(regs) == b.count
                    done += 1
        finally:
            w.close()

    tasks = [asyncio.create_task(one(p, bl)) for p, bl in zip(ports, blocks)]
    await asyncio.sleep(0.5)
    d0, t0 = done, time.perf_counter()
    await asyncio.sleep(duration)
    d1, t1 = done, time.perf_counter()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return dict(requests_s=(d1 - d0) / (t1 - t0))


async def main(args: argparse.Namespace) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(args.devices), stdout=subprocess.PIPE, cwd=ROOT
    )
    ports: list[int] = []
    try:
        assert child.stdout is not None
        while True:
            line = (await asyncio.wait_for(child.stdout.readline(), 30)).decode().strip()
            if line == "READY":
                break
            if not line:
                raise RuntimeError("device process exited before it was ready")
            ports.append(int(line.split()[1]))
        per_dev = args.points // args.devices
        print(f"{args.devices} devices x {per_dev} points = {args.devices * per_dev} points, loopback, python {sys.version.split()[0]}")
        print(f"RSS before drivers: {rss_mb():.1f} MB; load average {load_average()}")
        sat = await run_drivers(ports, per_dev, 0.001, args.duration)
        print(
            f"RSS: +{sat['cfg_mb']:.1f} MB for the pydantic device configs, +{sat['drivers_mb']:.1f} MB for the drivers' plans,"
            f" {sat['rss_mb']:.1f} MB total while polling"
        )
        print(
            f"saturated : {sat['points_s']:>9,.0f} points/s  {sat['requests_s']:>7,.0f} req/s  gateway CPU {sat['cpu_pct']:.0f} %"
            f"  {sat['us_per_point']:.2f} us CPU/point  ({sat['blocks']} blocks, {sat['bad']} non-GOOD, {sat['failures']} failures)"
        )
        real = await run_drivers(ports, per_dev, 1.0, args.duration)
        print(
            f"poll 1 s  : {real['points_s']:>9,.0f} points/s  {real['requests_s']:>7,.0f} req/s  gateway CPU {real['cpu_pct']:.1f} %"
            f"  RSS {real['rss_mb']:.1f} MB  ({real['bad']} non-GOOD)"
        )
        if args.raw:
            raw = await raw_reads(ports, per_dev, args.duration)
            print(
                f"raw MBAP  : {raw['requests_s']:>7,.0f} req/s (same blocks, no decode) vs {sat['requests_s']:,.0f} req/s"
                " through pymodbus + decode"
            )
        print(f"load average at the end {load_average()}")
    finally:
        child.terminate()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(child.wait(), 5)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--raw", action="store_true", help="also measure a minimal asyncio MBAP client on the same blocks")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(a.serve))
    else:
        asyncio.run(main(a))
