"""`gridgate`: one command, its subcommands from an explicit table plus registered plugins.

The gateway's own subcommands (validate, schema, gateway, watch, courier) are listed here. The
emulator side (demo, emulate, scenario, fault, lab) registers through the ``gridgate.commands``
entry points of the installed package (pyproject.toml), so the gateway never imports it. A plugin
that fails to load is reported on stderr and its commands answer with that error; nothing vanishes.

Exit codes: 0 success, 1 failure (bad config, runtime error), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

from gateway.config import load_config
from gateway.runtime import (
    DEFAULT_CONFIG,
    LAB_ZONE_ENV,
    default_config,
    duration_arg,
    run,
    say,
    sleep_for,
)
from gateway.site.load import ConfigError

log = logging.getLogger("gridgate")
Command = Callable[[argparse.Namespace], int]
PLUGINS = "gridgate.commands"  # entry-point group: name = module:register, register(subparsers) -> {cmd: fn}
PROFILE_RUNNER = "gridgate.profile_runner"  # entry point `run`: run(command, args) -> exit code, in a lab

#: where every broken plugin's error is kept for the commands that depend on it
_broken: dict[str, str] = {}


def common(sp: argparse.ArgumentParser, config: bool = True, broker: bool = True, duration: bool = True,
           profile: bool = False) -> None:
    """Options shared by the long-running commands (also used by plugins)."""
    if config:
        sp.add_argument("--config", "-c", default=None, help=f"site config YAML (default: {DEFAULT_CONFIG})")
    if broker:
        sp.add_argument("--broker", default=None, help="MQTT broker URL, mqtt://host:port or mqtts://host:port")
        sp.add_argument("--mqtt-version", choices=["5", "3.1.1"], default=None,
                        help="MQTT protocol version (default 5; 3.1.1 for the embedded broker)")
    if duration:
        sp.add_argument("--duration", type=duration_arg, default=None, help="stop cleanly after this long (e.g. 30, 10s, 5m)")
    if profile:
        sp.add_argument("--profile", default=None,
                        help="network profile configs/profiles/NAME.yaml: flat (default), segmented, one-way, "
                             "data-diode, air-gapped, wan-cellular, wan-radio-mesh")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (the gateway's own and the plugins')."""
    return build()[0]


def build() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    """The parser and the command table it dispatches to."""
    p = argparse.ArgumentParser(
        prog="gridgate",
        description="OT/SCADA protocol gateway and edge emulator: Modbus TCP, DNP3 and IEC 61850 devices → CIM measurements over MQTT.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    g = sub.add_parser("gateway", help="run only the gateway: poll the config's devices, publish to a broker")
    common(g, profile=True)
    g.add_argument("--username", default=None)
    g.add_argument("--password-file", default=None, help="file holding the broker password (kept out of argv and logs)")
    g.add_argument("--northbound", choices=["mqtt", "diode", "courier"], default="mqtt",
                   help="where values go: an MQTT broker (default), a data diode (UDP, one way) or air-gap courier bundles")
    g.add_argument("--diode-target", default=None, metavar="HOST:PORT", help="the diode receiver (with --northbound diode)")
    g.add_argument("--transfer-dir", default=None, help="bundle directory (with --northbound courier)")
    g.add_argument("--key-file", default=None, help="courier signing key (with --northbound courier)")
    g.add_argument("--no-inbound", action="store_true", help="subscribe to nothing (no commands, no rebirth requests)")

    w = sub.add_parser("watch", help="live table of the measurements on a broker")
    common(w, config=False)
    w.add_argument("--prefix", default="gridgate/v1", help="topic prefix (default gridgate/v1)")

    v = sub.add_parser("validate", help="check a config file; exit 0 if valid, 1 if not")
    v.add_argument("file", help="site config YAML")
    v.add_argument("--json", action="store_true", help="machine-readable result")

    s = sub.add_parser("schema", help="print the JSON Schema of the config and of the MQTT payloads")
    s.add_argument("which", nargs="?", choices=["all", "config", "measurement", "value", "status"], default="all")

    from gateway.conduits.cli import register as courier

    commands: dict[str, Command] = {"validate": cmd_validate, "schema": cmd_schema, "gateway": cmd_gateway,
                                    "watch": cmd_watch, **courier(sub)}
    commands.update(_plugins(sub))
    return p, commands


def _plugins(sub: argparse._SubParsersAction) -> dict[str, Command]:
    """Subcommands registered by installed plugins (entry points); a broken one is named, not hidden."""
    out: dict[str, Command] = {}
    for ep in sorted(entry_points(group=PLUGINS), key=lambda e: e.name):
        try:
            register = ep.load()
            out.update(register(sub))
        except Exception as e:  # noqa: BLE001 - any failure of a plugin is reported with its name
            _broken[ep.name] = f"{ep.value}: {type(e).__name__}: {e}"
            say(f"gridgate: plugin {ep.name!r} failed to load ({_broken[ep.name]}); its commands are unavailable")
    return out


def main(argv: list[str] | None = None) -> int:
    parser, commands = build()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.verbose < 2:  # pymodbus logs every failed connect and late reply; our drivers say it once, better
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        return commands[args.cmd](args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def profiled(command: str, args: argparse.Namespace) -> int | None:
    """Run ``command`` inside a network-profile lab (namespaces), or None for the flat default."""
    if getattr(args, "profile", None) in (None, "flat") or os.environ.get(LAB_ZONE_ENV):
        return None  # flat, or already a process inside the lab's zone
    runners = list(entry_points(group=PROFILE_RUNNER, name="run"))
    if not runners:
        raise ValueError(f"--profile {args.profile}: network profiles need the lab (devices.netlab), which is not installed")
    return runners[0].load()(command, args)


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
        by: dict[str, int] = {}
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


def cmd_gateway(args: argparse.Namespace) -> int:
    if (rc := profiled("gateway", args)) is not None:
        return rc
    cfg = load_config(args.config or default_config())
    if args.northbound == "mqtt" and not args.broker and not cfg.gateway.northbound.url:
        print("error: gateway needs --broker mqtt://host:port (or gateway.northbound.url in the config)", file=sys.stderr)
        return 2
    return run(_gateway(cfg, args))


def _conduit(cfg, args: argparse.Namespace):  # noqa: ANN001, ANN202 - (target text, northbound factory or None)
    """The northbound the options ask for: the broker (None), a data diode sender, or courier bundles."""
    if args.northbound == "diode":
        from gateway.conduits.northbound import DiodeNorthbound

        host, _, port = (args.diode_target or "").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("--northbound diode needs --diode-target HOST:PORT (the diode receiver)")
        return f"diode udp://{host}:{port}", lambda gw, will: DiodeNorthbound(host, int(port), birth=gw.birth)
    if args.northbound == "courier":
        from gateway.conduits.northbound import CourierNorthbound
        from gateway.conduits.records import load_key

        if not args.transfer_dir or not args.key_file:
            raise ValueError("--northbound courier needs --transfer-dir DIR and --key-file FILE")
        key = load_key(args.key_file)
        state = Path(args.transfer_dir) / f".writer-state-{cfg.gateway.id}.json"
        return f"courier {args.transfer_dir}", lambda gw, will: CourierNorthbound(args.transfer_dir, key, cfg.gateway.id,
                                                                                  state, birth=gw.birth)
    return args.broker or cfg.gateway.northbound.url, None


async def _gateway(cfg, args) -> int:  # noqa: ANN001
    from gateway.app import Gateway, GatewayOptions

    password = Path(args.password_file).read_text().strip() if args.password_file else None
    target, northbound = _conduit(cfg, args)
    opts = GatewayOptions(broker=args.broker or ("none" if northbound else None), protocol=args.mqtt_version,
                          username=args.username, password=password, skip=say, inbound=not args.no_inbound)
    if northbound is not None:
        opts.northbound = northbound
    gw = Gateway(cfg, opts)
    await gw.start()
    print(f"gateway {cfg.gateway.id} (profile {args.profile or 'flat'}, inbound={opts.inbound}): {len(gw.sources)} devices, {len(gw.catalog)} measurements → "
          f"{target}", flush=True)
    try:
        await sleep_for(args.duration)
    finally:
        await gw.stop()
        print(f"gateway {cfg.gateway.id}: stopped; {json.dumps(gw.stats())}", flush=True)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from gateway.watch import watch

    url = args.broker or "mqtt://127.0.0.1:1883"
    run(watch(url, args.duration, prefix=args.prefix, protocol=args.mqtt_version or "3.1.1", live=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
