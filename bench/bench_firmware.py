"""firmware_sim speed: point-samples/s (C vs Python reference vs NumPy) and tick lateness at 1 kHz.

    python bench/bench_firmware.py            # full run (~1 min)
    python bench/bench_firmware.py --quick    # short run, smaller figures

Throughput: every point is a sine with noise (the wave kernel); C runs tick() = compute +
registers + changed flags + seqlock publish, on one core without the GIL. NumPy computes
the same sine-plus-noise kernel (same hash noise). Lateness: the C sampling thread at
1 kHz for N seconds, idle and while this process serves Modbus TCP (devices.modbus
ModbusServer over fw.modbus()) to a client process reading 100 registers back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_sim import Firmware, SimPoint  # noqa: E402
from firmware_sim.build_native import build_inplace, is_stale  # noqa: E402

T0 = 1_763_800_000.0


def sine_points(n: int, registers: int = 0) -> list[SimPoint]:
    return [
        SimPoint(device="dev", name=f"p{k}",
                 signal={"kind": "sine", "mean": 100 + k % 50, "amplitude": 5, "period": 1 + k % 97, "noise": 0.1},
                 register={"table": "holding", "address": 2 * k, "type": "float32"} if k < registers else None)
        for k in range(n)
    ]


def rate_c(n: int, budget: float) -> float:
    fw = Firmware(sine_points(n), backend="c")
    s = fw._s
    s.bench(T0, 0.001, 3)  # warm
    count = 1
    while True:
        t = time.perf_counter()
        s.bench(T0, 0.001, count)
        el = time.perf_counter() - t
        if el > budget / 4:
            break
        count *= 4
    reps = [n * count / _timed(lambda: s.bench(T0, 0.001, count)) for _ in range(3)]
    return max(reps)


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def rate_python(n: int, budget: float) -> float:
    fw = Firmware(sine_points(n), backend="python")
    fw.tick(T0)
    count, el = 0, 0.0
    while el < budget and count < 1000:
        el += _timed(lambda: fw.tick(T0 + 0.001 * (count + 1)))
        count += 1
    return n * count / el


def rate_numpy(n: int, budget: float) -> float | None:
    try:
        import numpy as np
    except ImportError:
        return None
    from firmware_sim.rng import tick_key

    k = np.arange(n)
    mean = (100 + k % 50).astype(np.float64)
    amp = np.full(n, 5.0, np.float32)
    freq = 1.0 / (1 + k % 97)
    noise = np.full(n, 0.1, np.float32)
    idx = (k.astype(np.uint64) * 0x9E3779B9 & 0xFFFFFFFF).astype(np.uint32)
    out = np.empty(n, np.float32)

    def mix32(x):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))

    def tick(t: float) -> None:
        x = t * freq
        x -= np.rint(x)
        s = np.sin(2 * np.pi * x).astype(np.float32)
        h1 = mix32(np.uint32(tick_key(0, t)) ^ idx)
        h2 = mix32(h1 + np.uint32(0x6A09E667))
        g = ((h1 >> 16) + (h1 & 0xFFFF) + (h2 >> 16) + (h2 & 0xFFFF)).astype(np.float32) * np.float32(1 / 65536) - 2
        out[:] = mean.astype(np.float32) + amp * s + noise * g * np.float32(1.7320508)

    tick(T0)
    count, el = 0, 0.0
    while el < budget:
        el += _timed(lambda: tick(T0 + 0.001 * (count + 1)))
        count += 1
    return n * count / el


def throughput(budget: float, python: bool = True) -> None:
    print("\n== point-samples/s (one core; sine + noise points) ==")
    print(f"{'points':>8} {'C':>14} {'Python ref':>14} {'NumPy':>14} {'C/Python':>10} {'C/NumPy':>9} {'ns/pt C':>8}")
    for n in (1_000, 10_000, 100_000):
        c = rate_c(n, budget)
        py = rate_python(n, budget) if python else math.nan
        npy = rate_numpy(n, budget) if python else None
        npy_s = f"{npy:14.3e}" if npy else f"{'(no numpy)':>14}"
        ratio_np = f"{c / npy:9.1f}" if npy else f"{'-':>9}"
        print(f"{n:>8} {c:14.3e} {py:14.3e} {npy_s} {c / py:10.0f} {ratio_np} {1e9 / c:8.2f}")


def _modbus_client(port: int, seconds: float) -> subprocess.Popen:
    code = f"""
import socket, struct, time
s = socket.create_connection(("127.0.0.1", {port})); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
end, n, tid = time.monotonic() + {seconds}, 0, 0
while time.monotonic() < end:
    tid = (tid + 1) & 0xFFFF
    s.sendall(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, 0, 100))
    need, got = 9 + 200, b""
    while len(got) < need:
        chunk = s.recv(need - len(got))
        if not chunk: raise SystemExit("server closed")
        got += chunk
    n += 1
print(n)
"""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def lateness(seconds: float, with_modbus: bool, realtime: bool, spin: float = 0.0) -> tuple[list[float], int, int, float | None]:
    fw = Firmware(sine_points(1000, registers=50), backend="c")
    served = None
    loop = thread = None
    client = None
    if with_modbus:
        from devices.modbus import ModbusServer

        loop = asyncio.new_event_loop()
        started = threading.Event()
        holder: dict = {}

        async def serve() -> None:
            async with ModbusServer(fw.modbus("dev"), unit_id=1) as srv:
                holder["port"] = srv.port
                holder["stop"] = asyncio.Event()
                started.set()
                await holder["stop"].wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        started.wait(10)
        client = _modbus_client(holder["port"], seconds + 0.5)
        time.sleep(0.3)
    fw.start(0.001, realtime=realtime, spin=spin)
    time.sleep(seconds)
    fw.stop()
    late, ticks, skipped = fw.lateness()
    if with_modbus:
        out, _ = client.communicate(timeout=30)
        served = int(out.strip()) / (seconds + 0.5)
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
    return list(late), ticks, skipped, served


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def lateness_table(seconds: float, realtime: bool, spin: float = 0.0) -> None:
    print(f"\n== tick lateness, 1 kHz for {seconds:g} s, 1000 points, realtime={realtime}, spin={spin * 1e6:g} us"
          " (lateness in microseconds) ==")
    print(f"{'load':<26} {'ticks':>6} {'p50':>8} {'p99':>8} {'max':>9} {'>1ms':>5} {'skipped':>8} {'modbus req/s':>13}")
    for label, mb in (("idle", False), ("serving Modbus (FC3x100)", True)):
        late, ticks, skipped, served = lateness(seconds, mb, realtime, spin)
        over = sum(1 for x in late if x > 1000)
        srv = f"{served:13.0f}" if served is not None else f"{'-':>13}"
        print(f"{label:<26} {ticks:>6} {pct(late, 50):8.1f} {pct(late, 99):8.1f} {max(late):9.1f} {over:>5} {skipped:>8} {srv}"
              f"   (mean {statistics.fmean(late):.1f})")


def baseline_sampler():
    """The C core built without the AVX2 clone (plain SSE2 / the distributed baseline), in a temp dir."""
    import shutil
    import tempfile

    from firmware_sim import build_native

    tmp = tempfile.mkdtemp(prefix="ggfw-baseline-")
    try:
        return _build_baseline(tmp, build_native)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the module is loaded: Linux keeps a mapped .so after its unlink


def _build_baseline(tmp: str, build_native):  # noqa: ANN001, ANN202
    import glob
    import importlib.util
    import shutil

    shutil.copytree(build_native.HERE / "csrc", os.path.join(tmp, "src", "csrc"))
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from build_native import extension\n"
        "from setuptools import setup\n"
        "e = extension('src'); e.define_macros.append(('GGFW_NO_CLONES', '1'))\n"
        "setup(name='x', ext_modules=[e], script_args=['-q', 'build_ext', '--build-lib', 'lib', '--build-temp', 'obj'])\n"
    ) % str(build_native.HERE)
    subprocess.run([sys.executable, "-c", script], cwd=tmp, check=True, capture_output=True)
    (so,) = glob.glob(os.path.join(tmp, "lib", "firmware_sim", "_native*.so"))
    spec = importlib.util.spec_from_file_location("firmware_sim._native", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Sampler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run")
    ap.add_argument("--seconds", type=float, default=None, help="lateness run length (default 10, quick 2)")
    ap.add_argument("--realtime", action="store_true", help="also ask for SCHED_FIFO")
    ap.add_argument("--baseline", action="store_true", help="also measure the C core without the AVX2 clone")
    ap.add_argument("--spin", type=float, default=None, help="also measure with this spin (seconds, e.g. 0.0002)")
    a = ap.parse_args()
    if is_stale():
        print("building the C core in place:", build_inplace())
    fw = Firmware(sine_points(1), backend="auto")
    if fw.backend != "c":
        sys.exit("the C core is not available; build it with: python firmware_sim/build_native.py")
    throughput(0.3 if a.quick else 1.0)
    if a.baseline:
        from firmware_sim import backend

        dispatching = backend._native
        backend._native = baseline_sampler()
        print("\n(baseline build: SSE2 only, -DGGFW_NO_CLONES)", end="")
        throughput(0.3 if a.quick else 1.0, python=False)
        backend._native = dispatching
    secs = a.seconds or (2.0 if a.quick else 10.0)
    print(f"\n(load average before the lateness runs: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    lateness_table(secs, False)
    if a.spin:
        lateness_table(secs, False, a.spin)
    if a.realtime:
        lateness_table(secs, True)


if __name__ == "__main__":
    main()
