"""Emulator scale: N Modbus devices in one `gridgate emulate` process, one TCP connection per
device, each polled for its 20 holding registers at a paced interval (default 1 s).

Prints ``gridgate validate`` of the generated site (a large file is read in parts and its YAML not
cached since docs/performance.md's Stop 25, so ``--restart``'s first start is a cold one), start-up
(spawn → every port open), reply latency p50/p99/max, requests/s achieved
against asked, errors and timeouts, RSS and RSS per device, emulator CPU, the load generator's
own CPU (so a saturated client shows), and the load average (figures are only comparable at
similar load).

The polling client is bench/modbus_loadgen.c (C, epoll, ~20 µs CPU a request; start times spread
evenly over the interval, one request in flight per connection), built on first use with the
system C compiler (bench/modbus_loadgen.py). Without a compiler, or with ``--client python``,
asyncio clients in ``--clients`` processes poll instead: they saturate near 7,000 requests/s
per process on this 2-core machine, before the emulator does.

    python bench/bench_emulator_scale.py [--devices 1000 5000 10000] [--registers 20] [--interval 1] [--seconds 20]
    python bench/bench_emulator_scale.py --devices 10000 --processes 2   # emulate --processes 2
    python bench/bench_emulator_scale.py --devices 3000 10000 --restart --startup-only --fault-api   # start-up, RSS
    python bench/bench_emulator_scale.py --devices 10000 --addresses --restart   # device i on 127.1.x.y:1502

With ``--processes N`` CPU and RSS are the sum over the parent and its shard processes. With
``--addresses`` every device has its own 127.x address and all share one port (``--port-base``,
default 1502), as RTUs on a real network each have an address and the standard port: one
listening socket for all of them (devices/sharedlisten.py), so 10,000 devices hold ~10,000
descriptors in the emulator instead of ~20,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import site  # noqa: E402
from bench.support import below_ephemeral, percentile, still_waiting, stop, wait_ports  # noqa: E402


def proc_stats(pid: int) -> tuple[float, int]:
    """(cpu seconds, rss bytes) of a process and its children (the shards of --processes)."""
    import psutil

    parent = psutil.Process(pid)
    cpu, rss = 0.0, 0
    for p in [parent, *parent.children(recursive=True)]:
        try:
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return cpu, rss


def start_cpu(pid: int) -> float:
    """CPU seconds a start-up took: the emulator's own and its waited-for children's (the loader child that
    validates and compiles the site; the shards of --processes)."""
    import psutil

    total = 0.0
    for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def stop_all(emu: subprocess.Popen) -> None:
    """Stop the emulator and wait for its shards too: a shard closing thousands of servers may outlive
    the parent's grace period and still hold the ports of the next start."""
    import psutil

    try:
        children = psutil.Process(emu.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    stop(emu, grace=30)
    _, alive = psutil.wait_procs(children, timeout=30)
    for p in alive:
        p.kill()
    psutil.wait_procs(alive, timeout=5)


def raise_open_files(need: int) -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (one socket per device here and in the emulator); the hard
    limit too when it is below ``need`` and this process may raise it (root: 10,000 devices in one emulator
    process hold 20,000 sockets, the hard limit of this machine)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            soft, hard = need, need
        except (ValueError, OSError):
            pass
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def addresses(n: int) -> list[str]:
    """n distinct loopback addresses, 127.1.0.1 onwards (250 per third octet; 127.0.0.1 is left to others)."""
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(n)]


def wait_devices(endpoints: list[tuple[str, int]], timeout: float, proc: subprocess.Popen | None = None) -> float:
    """Seconds until the last device answers a Modbus read (devices start in file order, so then all are up).

    Why not wait_ports: on a shared port the kernel accepts a connection to every 127.x address as soon as
    the first device is up, and resets it while that address has no device yet."""
    import socket

    t0 = time.monotonic()
    host, port = endpoints[-1]
    while True:
        still_waiting(proc, t0, timeout, f"device {host}:{port} not answering")
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 0, 1))
                if len(s.recv(64)) >= 9:
                    return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.2)


async def poll_device(port: int | tuple[str, int], registers: int, interval: float, until: float, lat: list[float], errors: list[str]) -> None:
    """One connection, one FC3 read per interval (random phase so requests spread over the second)."""
    host, port = port if isinstance(port, tuple) else ("127.0.0.1", port)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        errors.append(f"connect {port}: {e}")
        return
    tid = 0
    loop = asyncio.get_running_loop()
    next_at = loop.time() + random.uniform(0, interval)
    try:
        while loop.time() < until:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += interval
            tid = (tid + 1) & 0xFFFF
            t0 = time.perf_counter()
            writer.write(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, 0, registers))
            head = await asyncio.wait_for(reader.readexactly(9), 10)
            body = await asyncio.wait_for(reader.readexactly(head[8]), 10)
            lat.append(time.perf_counter() - t0)
            if struct.unpack(">H", head[:2])[0] != tid or head[7] != 3 or len(body) != 2 * registers:
                errors.append(f"bad reply on {port}: {head.hex()}")
                return
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        errors.append(f"{port}: {type(e).__name__} {e}")
    finally:
        writer.close()


def client(ports: list[int] | list[tuple[str, int]], args: argparse.Namespace, start_at: float) -> tuple[list[float], list[str]]:
    """One client process: polls ``ports`` from ``start_at`` (wall clock) through warm-up and the window;
    returns the window's latencies."""
    async def run() -> tuple[list[float], list[str]]:
        raise_open_files(len(ports) + 100)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        lat: list[float] = []
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        warm_until = loop.time() + args.warmup
        tasks = [asyncio.create_task(poll_device(p, args.registers, args.interval, warm_until + args.seconds, lat,
                                                 errors)) for p in ports]
        await asyncio.sleep(args.warmup)
        lat.clear()
        await asyncio.gather(*tasks)
        return lat, errors
    return asyncio.run(run())


async def run_one(n: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="gg-bench-emu-") as d:  # a 10,000-device site file is ~60 MB
        return await _run_one(n, args, Path(d))


async def _run_one(n: int, args: argparse.Namespace, tmp: Path) -> dict:
    cfg = tmp / "site.yaml"
    data = site(n * args.registers, n, args.interval)
    if args.addresses:  # one port, an address per device
        for d, host in zip(data["devices"], addresses(n)):
            d["host"], d["port"] = host, args.port_base or 1502
    else:
        for d, port in zip(data["devices"], below_ephemeral(n, args.port_base)):
            d["port"] = port
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    ports: list = [(d["host"], d["port"]) if args.addresses else d["port"] for d in data["devices"]]

    def up(proc: subprocess.Popen) -> float:
        return wait_devices(ports, 900, proc) if args.addresses else wait_ports(ports, 900, proc)

    # `validate` (timed apart) reads a large file in parts and caches nothing (gateway/chunkload.py): the first
    # start below parses the file; startup_s, after --restart's first start, reads the compiled-site cache
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "gateway.cli", "validate", str(cfg)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    validate_s = time.monotonic() - t0
    cmd = [sys.executable, "-m", "gateway.cli", "emulate", "--config", str(cfg), "--processes", str(args.processes)]
    cmd += [] if args.fault_api else ["--no-fault-api"]
    cmd += ["--loop", args.loop]
    restart = restart_cpu = None
    if args.restart:  # a first start builds (and caches) the compiled site; the measured one below is a restart
        emu = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            restart = up(emu)
            restart_cpu = start_cpu(emu.pid)
        finally:
            stop_all(emu)
    emu = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        startup = up(emu)
        startup_cpu = start_cpu(emu.pid)
        _, rss_idle = proc_stats(emu.pid)
        if args.startup_only:
            return {"devices": n, "layout": layout(args), "processes": args.processes, "fault_api": args.fault_api,
                    "validate_s": round(validate_s, 1), "first_start_s": None if restart is None else round(restart, 1),
                    "first_start_cpu_s": None if restart_cpu is None else round(restart_cpu, 1),
                    "startup_s": round(startup, 1), "startup_cpu_s": round(startup_cpu, 1),
                    "emulator_rss_idle_mib": round(rss_idle / 2**20, 1),
                    "rss_per_device_kib": round((rss_idle / n) / 1024, 1), "load_average_1m": os.getloadavg()[0]}
        load0 = os.getloadavg()[0]
        if args.loadgen is not None:
            polled = await poll_c(args.loadgen, ports, args, emu.pid)
        else:
            polled = await poll_python(ports, args, emu.pid)
    finally:
        stop_all(emu)
    return {
        "devices": n,
        "layout": layout(args),
        "loop": args.loop,
        "processes": args.processes,
        "validate_s": round(validate_s, 1),
        "fault_api": args.fault_api,
        "first_start_s": None if restart is None else round(restart, 1),
        "first_start_cpu_s": None if restart_cpu is None else round(restart_cpu, 1),
        "startup_s": round(startup, 1),
        "startup_cpu_s": round(startup_cpu, 1),
        **polled,
        "rss_per_device_kib": round((rss_idle / n) / 1024, 1),
        "load_average_1m": [load0, os.getloadavg()[0]],
    }


def layout(args: argparse.Namespace) -> str:
    return f"addresses (127.1.x.y:{args.port_base or 1502})" if args.addresses else "ports (127.0.0.1)"


async def poll_c(binary: Path, ports: list, args: argparse.Namespace, pid: int) -> dict:
    """Poll with bench/modbus_loadgen.c; the emulator's CPU is sampled as the generator's window opens and closes."""
    from bench import modbus_loadgen

    marks: dict[str, tuple[float, float, int]] = {}

    def on_window(what: str) -> None:
        marks[what] = (time.monotonic(), *proc_stats(pid))

    load = modbus_loadgen.Load(registers=args.registers, interval=args.interval, warmup=args.warmup,
                               seconds=args.seconds, timeout=args.timeout)
    r = await modbus_loadgen.run(binary, ports, load, on_window)
    (w0, cpu0, _), (w1, cpu1, rss) = marks["start"], marks["end"]
    return {
        "client": "c (bench/modbus_loadgen.c)",
        "registers_per_device": args.registers,
        "interval_s": args.interval,
        "window_s": r["window_s"],
        "connected": r["connected"],
        "asked_per_s": r["asked_per_s"],
        "replies_per_s": r["replies_per_s"],
        "replies": r["replies"],
        "latency_ms": {k: round(r["latency_ms"][k], 1 if k != "p50" else 2) for k in ("p50", "p90", "p99", "p999", "max")},
        "errors": r["error_count"],
        "error_kinds": r["errors"],
        "timeouts": r["timeouts"],
        "skipped_busy": r["skipped_busy"],
        "worst_ms_by_second": r["max_ms_by_second"],
        "emulator_cpu_percent": round(100 * (cpu1 - cpu0) / (w1 - w0), 1),
        "emulator_cpu_us_per_reply": round(1e6 * (cpu1 - cpu0) / r["replies"], 1) if r["replies"] else None,
        "emulator_rss_mib": round(rss / 2**20, 1),
        "generator_cpu_percent": r["cpu_percent"],
        "generator_send_lag_ms": r["send_lag_ms"],
    }


async def poll_python(ports: list, args: argparse.Namespace, pid: int) -> dict:
    """Poll from ``--clients`` asyncio client processes (the fallback without a C compiler)."""
    lat: list[float] = []
    errors: list[str] = []
    # warm-up: connect everything and poll; then measure a clean window (clients in their own processes)
    from concurrent.futures import ProcessPoolExecutor

    start_at = time.time() + 2.0  # every client process up before the first request
    with ProcessPoolExecutor(args.clients) as pool:
        futs = [pool.submit(client, ports[i::args.clients], args, start_at) for i in range(args.clients)]
        await asyncio.sleep(max(0.0, start_at - time.time()) + args.warmup)
        cpu0, _ = proc_stats(pid)
        w0 = time.monotonic()
        for f in futs:
            got, errs = await asyncio.wrap_future(f)
            lat += got
            errors += errs
        dt = time.monotonic() - w0
        cpu1, rss = proc_stats(pid)
    return {
        "client": f"python ({args.clients} processes)",
        "registers_per_device": args.registers,
        "interval_s": args.interval,
        "asked_per_s": round(len(ports) / args.interval),
        "replies": len(lat),
        "replies_per_s": round(len(lat) / dt),
        "latency_ms": {"p50": round(1000 * percentile(lat, 0.5), 1), "p99": round(1000 * percentile(lat, 0.99), 1),
                       "max": round(1000 * max(lat), 1) if lat else None},
        "errors": len(errors),
        "first_errors": errors[:3],
        "emulator_cpu_percent": round(100 * (cpu1 - cpu0) / dt, 1),
        "emulator_rss_mib": round(rss / 2**20, 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[1000])
    ap.add_argument("--registers", type=int, default=20)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, help="seconds of polling before the measured window (default: 3, or one "
                    "per 1,000 devices if more: accepting thousands of connections and their first requests takes "
                    "seconds, 9,500 devices ~6 s)")
    ap.add_argument("--restart", action="store_true", help="start the emulator once before the measured start: "
                    "startup_s is then a restart (compiled site cached, devices/emucache.py), first_start_s the build")
    ap.add_argument("--fault-api", action="store_true", help="leave the fault API on (the default of "
                    "`gridgate emulate`; the bench runs --no-fault-api otherwise)")
    ap.add_argument("--startup-only", action="store_true", help="start-up and idle RSS only, no polling (one "
                    "socket per device: 10,000 devices under an open-file hard limit of 20,000)")
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="gridgate emulate --loop "
                    "(auto: uvloop where installed; asyncio: the fallback's selector loop and its add_reader I/O path)")
    ap.add_argument("--processes", default="1", help="gridgate emulate --processes (N or auto)")
    ap.add_argument("--client", choices=("c", "python"), default="c", help="the polling client: the C load generator "
                    "(bench/modbus_loadgen.c, built with the system compiler) or asyncio clients (--clients processes)")
    ap.add_argument("--clients", type=int, default=1, help="with --client python: client processes polling the devices "
                    "(one saturates near 7,000 requests/s)")
    ap.add_argument("--port-base", type=int, help="first device port to try (default: 2n+2000 below the ephemeral "
                    "range); the same ports give the same site file, parsed once and cached, and keep clear of "
                    "other benches on a shared machine")
    ap.add_argument("--addresses", action="store_true", help="device i on its own address 127.1.x.y, all on one port "
                    "(--port-base, default 1502): one shared listening socket in the emulator (devices/sharedlisten.py)")
    ap.add_argument("--timeout", type=float, default=5.0, help="a reply later than this counts as a timeout (C client)")
    args = ap.parse_args()
    args.loadgen = None
    if args.client == "c":
        from bench import modbus_loadgen

        args.loadgen, why = modbus_loadgen.build()
        if args.loadgen is None:
            print(f"bench: {why}; polling with {args.clients} Python client process(es) instead, which saturate near "
                  "7,000 requests/s each: latency at thousands of devices is then the clients' (use --clients)",
                  file=sys.stderr)
    # an emulator process holds a listening and an accepted socket per device (with --addresses: one listening
    # socket in all), the client one per device
    shards = (os.cpu_count() or 1) if args.processes == "auto" else int(args.processes)
    per_device = 1 if args.addresses and shards == 1 else 2
    need = max(per_device * max(args.devices) // shards, max(args.devices)) + 200
    if args.startup_only:  # listening sockets only
        need = (1 if args.addresses and shards == 1 else max(args.devices) // shards) + 100
    limit = raise_open_files(need)
    if limit < need:
        raise SystemExit(f"open-file limit {limit} is too low for {max(args.devices)} devices in {shards} emulator "
                         f"process(es) (two sockets per device each); use --processes {2 * max(args.devices) // limit + 1}")
    warmup = args.warmup
    for n in args.devices:
        args.warmup = warmup if warmup is not None else max(3.0, n / 1000)
        print(json.dumps(await run_one(n, args)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
