"""``gridgate emulate`` and ``gridgate demo``: the emulated devices alone, or devices + gateway +
broker with a live table. Registered through the ``gridgate.commands`` entry point."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Callable

from gateway import service
from gateway.cli import common, profiled, usage_error
from gateway.config import load_config
from gateway.hmi.cli import add_demo_options, start_for_demo
from gateway.runtime import LOOPS, default_config, free_port, port_free, resolve_loop, run, say, sleep_for, uvloop_missing
from gateway.site.gcpause import gc_paused


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    d = sub.add_parser("demo", help="devices + gateway + broker with a live table of measurements")
    common(d, profile=True)
    d.add_argument("--broker-port", type=int, default=1883, help="port of the embedded broker (default 1883; a free one if taken)")
    d.add_argument("--no-live", action="store_true", help="no live table: at the end print the whole table and a one-line summary (default when not on a terminal)")
    d.add_argument("--seed", type=int, default=0, help="seed of the simulated firmware")
    d.add_argument("--json", action="store_true", help="print the end-of-run summary as JSON")
    d.add_argument("--filter", default=None, metavar="TEXT", help="live table: only measurements whose name contains TEXT")
    d.add_argument("--metrics", default=None, metavar="[HOST:]PORT", help="serve the gateway's Prometheus /metrics")
    d.add_argument("--no-fault-api", action="store_true", help="do not open the loopback fault-injection API")
    _name_option(d)
    add_demo_options(d)  # --hmi PORT, --ws-url: the browser mimic (gateway/hmi)

    e = sub.add_parser("emulate", help="run only the emulated devices of a config")
    common(e, broker=False, profile=True)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", action="append", default=None, help="only this device (repeatable)")
    e.add_argument("--no-fault-api", action="store_true", help="do not open the loopback fault-injection API")
    e.add_argument("--metrics", default=None, metavar="[HOST:]PORT", help="serve Prometheus /metrics of the emulated devices")
    _name_option(e)
    e.add_argument("--processes", default="1", metavar="N|auto",
                   help="spread the devices over N processes (auto: one per core); no fault API then (devices/shards.py)")
    e.add_argument("--loop", choices=LOOPS, default="auto",
                   help="event loop of the emulated servers: auto (default: uvloop where installed, else asyncio), "
                        "asyncio or uvloop: at one request in flight a Modbus server costs ~20 %% less CPU per "
                        "request on uvloop (docs/performance.md), which counts at thousands of devices")
    e.add_argument("--shard", default=None, help=argparse.SUPPRESS)  # I/N: one of --processes' children
    return {"demo": cmd_demo, "emulate": cmd_emulate}


def _name_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--name", default=None, help="this emulator's name for `gridgate fault --name` (default: the "
                    "config file's name); its fault API state goes to <runtime dir>/gridgate/faultapi/NAME.json")


def _name_error(args: argparse.Namespace) -> str | None:
    from devices.faultapi.state import check_name

    try:
        if getattr(args, "name", None) is not None:
            check_name(args.name)
    except ValueError as e:
        return str(e)
    return None


async def _start_fault_api(emu, args):  # noqa: ANN001, ANN202 - the emulator → a started FaultApiServer or None
    if args.no_fault_api:
        return None
    from devices.faultapi.server import FaultApiServer
    from devices.scenario.inject import Injector

    return await FaultApiServer(Injector(emu), name=args.name, config=args.config or default_config()).start()


def cmd_emulate(args: argparse.Namespace) -> int:
    if (rc := profiled("emulate", args)) is not None:
        return rc
    if (why := usage_error(args) or _name_error(args) or uvloop_missing(args.loop)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    args.loop = resolve_loop(args.loop)  # once, so every shard runs the loop this process chose
    from devices.shards import parse_processes, parse_shard, run_shards

    try:
        processes = parse_processes(args.processes)
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if processes > 1 and args.metrics:
        print("error: --metrics serves the devices of one process; use it with --processes 1", file=sys.stderr)
        return 2
    path = args.config or default_config()
    if processes > 1 and shard is None:
        from devices.emusite import device_names

        known = device_names(path)  # the shards validate the whole site (each compiles its firmware)
    else:  # compact tables: the config model never reaches this process (the fault API's are ~1 KiB a device)
        from devices import emusite

        site = emusite.load(path, args.seed, only=args.device, shard=shard,
                            faults=not args.no_fault_api and shard is None)
        known = site.known
    if args.device:
        unknown = [n for n in args.device if n not in known]
        if unknown:
            print(f"error: --device {', '.join(unknown)}: no such enabled device in {path}; "
                  f"choose from {', '.join(known)}", file=sys.stderr)
            return 2
    if processes > 1 and shard is None:
        wanted = args.device or known
        processes = min(processes, len(wanted))
        if processes > 1:
            say(f"emulate: {len(wanted)} devices over {processes} processes (no fault API when sharded; "
                "use --processes 1 to inject faults)")
            child = ["--config", str(path), "--seed", str(args.seed), "--no-fault-api", "--loop", args.loop]
            child += [x for n in (args.device or []) for x in ("--device", n)]
            child += ["--duration", str(args.duration)] if args.duration is not None else []
            return run_shards(processes, child)
        from devices import emusite

        site = emusite.load(path, args.seed, only=args.device, faults=not args.no_fault_api)
    if shard is not None:
        args.no_fault_api = True
    return run(_emulate(site, args), loop=args.loop)


def _emulator_snapshot(emu) -> tuple[dict, dict]:  # noqa: ANN001
    """The emulated devices as the metrics endpoint shows them: listening, and their own counters."""
    devices = {}
    for name, rd in emu.devices.items():
        counters = getattr(rd.server, "counters", None)
        devices[name] = {"protocol": rd.cfg.protocol, "connected": True,
                         "counters": dict(counters) if isinstance(counters, dict) else {}}
    for name in emu.skipped:
        devices[name] = {"protocol": "", "connected": False}
    return devices, {"seq": emu.k}


async def _emulate(cfg, args) -> int:  # noqa: ANN001 - a Config, or an EmulatedSite holding only this process's devices
    import gc

    from devices.emulator import Emulator
    from devices.emusite import EmulatedSite

    only = None if isinstance(cfg, EmulatedSite) or not args.device else set(args.device)
    if getattr(args, "loop", "asyncio") != "asyncio":  # the loop really running, as the operator asked for it
        say(f"emulate: event loop {type(asyncio.get_running_loop()).__module__.partition('.')[0]}")
    emu = Emulator(cfg, seed=args.seed, skip=say, only=only)
    with gc_paused():  # start-up allocates per device: collections in between grow with the heap (quadratic)
        await emu.start()
    gc.freeze()  # thousands of devices' objects live until exit: full GC passes over them stalled replies
    api = None
    try:
        api = await _start_fault_api(emu, args)
        for name, rd in emu.devices.items():
            print(f"{name}: {rd.cfg.protocol} {rd.cfg.kind} on {rd.cfg.host}:{rd.port} ({len(rd.cfg.points)} points)")
        if api is not None:
            print(f"fault API of emulator {api.name!r} on {api.url} (token in {api.state_file}); "
                  f"try `gridgate fault list --name {api.name}`")
        print(f"emulating {len(emu.devices)} devices (firmware backend: {emu.fw.backend}); Ctrl-C to stop", flush=True)
        async with service.serving(f"emulating {len(emu.devices)} devices", args.metrics, lambda: _emulator_snapshot(emu),
                                   source="emulator"):
            await sleep_for(args.duration)
    finally:
        if api is not None:
            await api.stop()
        await emu.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.hmi is not None and args.profile not in (None, "flat"):
        print("error: demo --hmi works with the flat (loopback) profile only; run `gridgate hmi` against the profile's "
              "broker", file=sys.stderr)
        return 2
    if (rc := profiled("demo", args)) is not None:
        return rc
    if (why := usage_error(args) or _name_error(args)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    cfg = load_config(args.config or default_config())
    return run(_demo(cfg, args))


async def _watch(watcher, args) -> None:  # noqa: ANN001
    """Until --duration ends (or forever): quietly, or with the live table on a terminal."""
    from gateway.watch import render

    if args.no_live or args.json or not sys.stdout.isatty():
        await sleep_for(args.duration)
        return
    from rich.live import Live

    with Live(render(watcher.state, match=args.filter), refresh_per_second=4) as live:
        end = None if args.duration is None else time.monotonic() + args.duration
        while end is None or time.monotonic() < end:
            await asyncio.sleep(0.25)
            live.update(render(watcher.state, match=args.filter))


async def _demo(cfg, args) -> int:  # noqa: ANN001
    from devices.emulator import Emulator
    from gateway.app import Gateway, GatewayOptions
    from gateway.broker import EmbeddedBroker
    from gateway.watch import Watcher, render

    broker = None
    url = args.broker
    version = args.mqtt_version
    if url is None:
        port = args.broker_port if port_free(args.broker_port) else free_port()
        if port != args.broker_port:
            say(f"demo: port {args.broker_port} is taken; embedded broker on 127.0.0.1:{port}")
        broker = await EmbeddedBroker("127.0.0.1", port, ws_port=free_port() if args.hmi else None).start()
        url, version = broker.url, version or "3.1.1"
        say(f"demo: embedded MQTT 3.1.1 broker on {url} (use --broker for Mosquitto)")
    version = version or "5"
    try:
        hmi = await start_for_demo(cfg, args, broker.ws_url if broker else None)
    except Exception:
        if broker is not None:
            await broker.stop()
        raise
    emu = Emulator(cfg, seed=args.seed, skip=say)
    try:
        await emu.start()
    except BaseException:  # a device port in use (named by the emulator): leave nothing running behind
        await emu.stop()
        if hmi is not None:
            await hmi.stop()
        if broker is not None:
            await broker.stop()
        raise
    gw = Gateway(cfg, GatewayOptions(broker=url, protocol=version, skip=lambda m: None))
    watcher = Watcher(url, cfg.gateway.northbound.topic_prefix, protocol=version)
    started = time.monotonic()
    emulated = sorted(emu.devices)
    metrics = api = None
    interrupted = False
    try:
        api = await _start_fault_api(emu, args)
        if api is not None:
            say(f"demo: fault API of emulator {api.name!r} on {api.url}; `gridgate fault list --name {api.name}`")
        await gw.start()
        try:
            await watcher.start()
        except OSError as e:  # ConnectionError included: refused, or not an MQTT broker
            print(f"error: demo: cannot reach the MQTT broker {url}: {e}; start it, or leave out --broker to use the "
                  "embedded one", file=sys.stderr)
            return 3
        if args.metrics:
            from gateway.metrics import MetricsServer

            metrics = await MetricsServer(args.metrics, lambda: (gw.device_states(), gw.stats())).start()
            say(f"demo: metrics on {metrics.url}")
        try:
            await _watch(watcher, args)
        except asyncio.CancelledError:  # Ctrl-C / SIGTERM: stop everything, then still give the summary
            interrupted = True
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
    finally:
        if metrics is not None:
            await metrics.stop()
        if api is not None:
            await api.stop()
        try:
            await watcher.stop()
        except Exception:  # noqa: BLE001 - the broker may already be gone on Ctrl-C
            pass
        await gw.stop()
        await emu.stop()
        if hmi is not None:
            await hmi.stop()
        if broker is not None:
            await broker.stop()
    st = watcher.state
    summary = {
        "seconds": round(time.monotonic() - started, 1),
        "interrupted": interrupted,  # stopped by SIGINT/SIGTERM before --duration
        "broker": url,
        "devices_emulated": emulated,
        "devices_skipped": emu.skipped,
        "measurements_seen": len(st.rows),
        "values_received": st.received,
        "gateway": gw.stats(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        if args.no_live or not sys.stdout.isatty():  # (the live table stays on screen as it was last drawn)
            from rich.console import Console

            Console(width=160).print(render(st, limit=len(st.rows) or 1, match=args.filter))
        print(f"demo: {st.received} values for {len(st.rows)} measurements received in {summary['seconds']} s"
              + (" (interrupted)" if interrupted else ""))
    return 0 if st.received > 0 else 1
