"""`gridgate` command line: demo, emulate, gateway, watch, validate, schema.

Exit codes: 0 success, 1 failure (bad config, runtime error), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
import time
from pathlib import Path

from gateway.configload import ConfigError, load_config
from gateway.interrupt import BuildInterrupted, interruptible

DEFAULT_CONFIG = "configs/primary-substation.yaml"
log = logging.getLogger("gridgate")


def _default_config() -> str:
    here = Path(DEFAULT_CONFIG)
    if here.exists():
        return str(here)
    repo = Path(__file__).resolve().parent.parent / DEFAULT_CONFIG
    return str(repo) if repo.exists() else DEFAULT_CONFIG


def _duration(v: str) -> float:
    from gateway.config import parse_duration

    try:
        return parse_duration(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gridgate",
        description="OT/SCADA protocol gateway and edge emulator: Modbus TCP, DNP3 and IEC 61850 devices → CIM measurements over MQTT.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, config: bool = True, broker: bool = True, duration: bool = True) -> None:
        if config:
            sp.add_argument("--config", "-c", default=None, help=f"site config YAML (default: {DEFAULT_CONFIG})")
        if broker:
            sp.add_argument("--broker", default=None, help="MQTT broker URL, mqtt://host:port or mqtts://host:port")
            sp.add_argument("--mqtt-version", choices=["5", "3.1.1"], default=None, help="MQTT protocol version (default 5; 3.1.1 for the embedded broker)")
        if duration:
            sp.add_argument("--duration", type=_duration, default=None, help="stop cleanly after this long (e.g. 30, 10s, 5m)")

    d = sub.add_parser("demo", help="devices + gateway + broker with a live table of measurements")
    common(d)
    d.add_argument("--broker-port", type=int, default=1883, help="port of the embedded broker (default 1883; a free one if taken)")
    d.add_argument("--no-live", action="store_true", help="print a summary instead of the live table")
    d.add_argument("--seed", type=int, default=0, help="seed of the simulated firmware")
    d.add_argument("--json", action="store_true", help="print the end-of-run summary as JSON")

    e = sub.add_parser("emulate", help="run only the emulated devices of a config")
    common(e, broker=False)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", action="append", default=None, help="only this device (repeatable)")
    e.add_argument("--no-fault-api", action="store_true", help="do not open the loopback fault-injection API")

    g = sub.add_parser("gateway", help="run only the gateway: poll the config's devices, publish to a broker")
    common(g)
    g.add_argument("--username", default=None)
    g.add_argument("--password-file", default=None, help="file holding the broker password (kept out of argv and logs)")

    w = sub.add_parser("watch", help="live table of the measurements on a broker")
    common(w, config=False)
    w.add_argument("--prefix", default="gridgate/v1", help="topic prefix (default gridgate/v1)")

    v = sub.add_parser("validate", help="check a config file; exit 0 if valid, 1 if not")
    v.add_argument("file", help="site config YAML")
    v.add_argument("--json", action="store_true", help="machine-readable result")

    s = sub.add_parser("schema", help="print the JSON Schema of the config and of the MQTT payloads")
    s.add_argument("which", nargs="?", choices=["all", "config", "measurement", "value", "status"], default="all")
    for sp in (d, e, g):
        sp.add_argument("--profile", default=None,
                        help="network profile configs/profiles/NAME.yaml: flat (default), segmented, one-way, "
                             "data-diode, air-gapped, wan-cellular, wan-radio-mesh")
    _register_optional(sub)
    return p


def _profiled(command: str, args: argparse.Namespace) -> int | None:
    """Run the command inside a network-profile lab (namespaces), or None for the flat default."""
    if getattr(args, "profile", None) in (None, "flat"):
        return None
    from devices.netlab.run import run_with_profile

    return run_with_profile(command, args)


def _register_optional(sub) -> None:
    """Subcommands that live beside their subsystem (scenario runner, fault API, network lab)."""
    import importlib

    for module in ("devices.scenario.cli", "devices.netlab.cli"):
        try:
            register = importlib.import_module(module).register
        except (ImportError, AttributeError):
            continue
        COMMANDS.update(register(sub))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.verbose < 2:  # pymodbus logs every failed connect and late reply; our drivers say it once, better
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        return COMMANDS[args.cmd](args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BuildInterrupted as e:  # like a signal once running: clean stop, exit 0
        print(f"{args.cmd}: {e}", file=sys.stderr)
        return 0
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


# ---------------------------------------------------------------- commands


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        if args.json:
            print(json.dumps({"file": args.file, "valid": False, "errors": e.problems}, indent=2))
        else:
            print(f"{e}", file=sys.stderr)
            print(f"{args.file}: INVALID ({len(e.problems)} problem{'s' if len(e.problems) != 1 else ''})", file=sys.stderr)
        return 1
    summary = {
        "file": args.file,
        "valid": True,
        "site": cfg.site.name,
        "substations": len(cfg.substations),
        "devices": {d.name: {"protocol": d.protocol, "points": len(d.points)} for d in cfg.devices},
        "points": sum(len(d.points) for d in cfg.devices),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        by = {}
        for d in cfg.devices:
            by[d.protocol] = by.get(d.protocol, 0) + 1
        print(
            f"{args.file}: OK — site {cfg.site.name}, {len(cfg.devices)} devices "
            f"({', '.join(f'{n} {p}' for p, n in sorted(by.items()))}), {summary['points']} points"
        )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from gateway.cim import json_schemas

    schemas = json_schemas()
    out = schemas if args.which == "all" else schemas[args.which]
    print(json.dumps(out, indent=2))
    return 0


def cmd_emulate(args: argparse.Namespace) -> int:
    if (rc := _profiled("emulate", args)) is not None:
        return rc
    cfg = load_config(args.config or _default_config())
    return _run(_emulate(cfg, args))


async def _emulate(cfg, args) -> int:
    from devices.emulator import Emulator

    from devices.faultapi.server import FaultApiServer
    from devices.scenario.inject import Injector

    emu = Emulator(cfg, seed=args.seed, skip=_say, only=set(args.device) if args.device else None)
    await emu.start()
    import gc

    gc.freeze()  # thousands of devices' objects live until exit: full GC passes over them stalled replies
    api = None
    try:
        if not args.no_fault_api:
            api = await FaultApiServer(Injector(emu)).start()
        for name, rd in emu.devices.items():
            print(f"{name}: {rd.cfg.protocol} {rd.cfg.kind} on {rd.cfg.host}:{rd.port} ({len(rd.cfg.points)} points)")
        if api is not None:
            print(f"fault API on {api.url} (token in {api.state_file}); try `gridgate fault list`")
        print(f"emulating {len(emu.devices)} devices (firmware backend: {emu.fw.backend}); Ctrl-C to stop", flush=True)
        await _sleep(args.duration)
    finally:
        if api is not None:
            await api.stop()
        await emu.stop()
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    if (rc := _profiled("gateway", args)) is not None:
        return rc
    path = args.config or _default_config()
    with interruptible():  # a 50,000-point site takes seconds to load: SIGTERM must not wait for it
        log.info("gateway: loading %s", path)
        cfg = load_config(path, gateway_only=True)
    if not args.broker and not cfg.gateway.northbound.url:
        print("error: gateway needs --broker mqtt://host:port (or gateway.northbound.url in the config)", file=sys.stderr)
        return 2
    return _run(_gateway(cfg, args))


async def _gateway(cfg, args) -> int:
    from gateway.app import Gateway, GatewayOptions

    password = Path(args.password_file).read_text().strip() if args.password_file else None
    with interruptible():  # the event loop's signal handlers cannot run during this synchronous build
        log.info("gateway %s: building drivers and catalog for %d devices", cfg.gateway.id, len(cfg.devices))
        gw = Gateway(cfg, GatewayOptions(broker=args.broker, protocol=args.mqtt_version, username=args.username,
                                         password=password, skip=_say))
    import gc

    gc.freeze()  # config, catalog and drivers live as long as the process: keep them out of every GC pass
    await gw.start()
    print(f"gateway {cfg.gateway.id}: {len(gw.sources)} devices, {len(gw.catalog)} measurements → {args.broker}", flush=True)
    try:
        await _sleep(args.duration)
    finally:
        await gw.stop()
        print(f"gateway {cfg.gateway.id}: stopped; {json.dumps(gw.stats())}", flush=True)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from gateway.watch import watch

    url = args.broker or "mqtt://127.0.0.1:1883"
    _run(watch(url, args.duration, prefix=args.prefix, protocol=args.mqtt_version or "3.1.1", live=True))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if (rc := _profiled("demo", args)) is not None:
        return rc
    cfg = load_config(args.config or _default_config())
    return _run(_demo(cfg, args))


async def _demo(cfg, args) -> int:
    from devices.emulator import Emulator
    from gateway.app import Gateway, GatewayOptions
    from gateway.broker import EmbeddedBroker
    from gateway.watch import Watcher, render

    broker = None
    url = args.broker
    version = args.mqtt_version
    if url is None:
        port = args.broker_port if _port_free(args.broker_port) else _free_port()
        if port != args.broker_port:
            _say(f"demo: port {args.broker_port} is taken; embedded broker on 127.0.0.1:{port}")
        broker = await EmbeddedBroker("127.0.0.1", port).start()
        url, version = broker.url, version or "3.1.1"
        _say(f"demo: embedded MQTT 3.1.1 broker on {url} (use --broker for Mosquitto)")
    version = version or "5"
    emu = Emulator(cfg, seed=args.seed, skip=_say)
    await emu.start()
    gw = Gateway(cfg, GatewayOptions(broker=url, protocol=version, skip=lambda m: None))
    watcher = Watcher(url, cfg.gateway.northbound.topic_prefix, protocol=version)
    started = time.monotonic()
    emulated = sorted(emu.devices)
    try:
        await gw.start()
        await watcher.start()
        if args.no_live or args.json or not sys.stdout.isatty():
            await _sleep(args.duration)
        else:
            from rich.live import Live

            with Live(render(watcher.state), refresh_per_second=4) as live:
                end = None if args.duration is None else time.monotonic() + args.duration
                while end is None or time.monotonic() < end:
                    await asyncio.sleep(0.25)
                    live.update(render(watcher.state))
    finally:
        try:
            await watcher.stop()
        except Exception:  # the broker may already be gone on Ctrl-C
            pass
        await gw.stop()
        await emu.stop()
        if broker is not None:
            await broker.stop()
    st = watcher.state
    summary = {
        "seconds": round(time.monotonic() - started, 1),
        "broker": url,
        "devices_emulated": emulated,
        "devices_skipped": emu.skipped,
        "measurements_seen": len(st.rows),
        "values_received": st.received,
        "gateway": gw.stats(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    elif args.no_live or not sys.stdout.isatty():
        from rich.console import Console

        Console().print(render(st, limit=len(st.rows) or 1))
        print(f"demo: {st.received} values for {len(st.rows)} measurements received in {summary['seconds']} s")
    return 0 if st.received > 0 else 1


COMMANDS = {
    "validate": cmd_validate,
    "schema": cmd_schema,
    "emulate": cmd_emulate,
    "gateway": cmd_gateway,
    "watch": cmd_watch,
    "demo": cmd_demo,
}


# ---------------------------------------------------------------- helpers


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _sleep(duration: float | None) -> None:
    if duration is None:
        await asyncio.Event().wait()
    else:
        await asyncio.sleep(duration)


def _run(coro) -> int:
    """Run until done or SIGINT/SIGTERM; a signal cancels the main task so cleanup (offline status) runs."""

    async def runner() -> int:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return 0

    return asyncio.run(runner()) or 0


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
