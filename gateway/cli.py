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
from pathlib import Path
from typing import Callable

from gateway.interrupt import BuildInterrupted, interruptible
from gateway.runtime import (
    DEFAULT_CONFIG,
    LAB_ZONE_ENV,
    default_config,
    duration_arg,
    run,
    say,
    sleep_for,
)
from gateway.site.errors import ConfigError

log = logging.getLogger("gridgate")
#: exit status of `gateway` when it ran but delivered nothing (broker unreachable for the whole run)
EXIT_UNDELIVERED = 3
#: the gateway's young-generation GC threshold (Python's default is 700): see cmd_gateway
GC_YOUNG = 10_000
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


#: the gateway's own long-running command: run alone, it needs neither the other commands nor the plugins
#: (the emulator, labs, IEC 61850 servers, courier crypto, CIM tools: ~10 MB of imports a gateway never uses)
LEAN = ("gateway",)


def build(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    """The parser and the command table it dispatches to; ``only`` one of :data:`LEAN`: just that command."""
    p = argparse.ArgumentParser(
        prog="gridgate",
        description="OT/SCADA protocol gateway and edge emulator: Modbus TCP, DNP3 and IEC 61850 devices → CIM measurements over MQTT.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    p.add_argument("--log-format", choices=["text", "journal", "json"], default=None,
                   help="text, journal (systemd priority prefixes, no timestamps; the default under systemd) or json "
                        "(one object per line)")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    i = sub.add_parser("init", help="copy the shipped example site, profiles and scenarios into DIR/configs for editing")
    i.add_argument("dir", nargs="?", default=".", help="target directory (default: the current one)")
    i.add_argument("--force", action="store_true", help="overwrite files that exist")

    g = sub.add_parser("gateway", help="run only the gateway: poll the config's devices, publish to a broker")
    common(g, profile=True)
    g.add_argument("--username", default=None)
    g.add_argument("--password-file", default=None, help="file holding the broker password (kept out of argv and logs)")
    g.add_argument("--northbound", choices=["mqtt", "diode", "courier"], default="mqtt",
                   help="where values go: an MQTT broker (default), a data diode (UDP, one way) or air-gap courier bundles")
    g.add_argument("--diode-target", default=None, metavar="HOST:PORT", help="the diode receiver (with --northbound diode)")
    g.add_argument("--transfer-dir", default=None, help="bundle directory (with --northbound courier)")
    g.add_argument("--key-file", default=None,
                   help="courier: the Ed25519 signing key (PEM); diode: the MAC key shared with the receiver")
    g.add_argument("--no-inbound", action="store_true", help="subscribe to nothing (no commands, no rebirth requests)")
    g.add_argument("--metrics", default=None, metavar="[HOST:]PORT",
                   help="serve Prometheus /metrics (loopback unless a host is given), the status topic's figures")

    if only in LEAN:
        return p, {"gateway": cmd_gateway}

    sv = sub.add_parser("service", help="systemd units for the gateway and the emulator: print or install them")
    sv.add_argument("action", choices=["print", "install"])
    sv.add_argument("unit", choices=["gateway", "emulate"])
    sv.add_argument("--config", default="/etc/gridgate/site.yaml", help="site file the service runs (default %(default)s)")
    sv.add_argument("--broker", default=None, help="broker URL for the gateway (default: gateway.northbound.url)")
    sv.add_argument("--user", default="gridgate", help="unprivileged user the service runs as (default %(default)s)")
    sv.add_argument("--unit-dir", default="/etc/systemd/system", help="where install writes the unit (default %(default)s)")

    w = sub.add_parser("watch", help="live table of the measurements on a broker")
    common(w, config=False)
    w.add_argument("--prefix", default="gridgate/v1", help="topic prefix (default gridgate/v1)")
    w.add_argument("--filter", default=None, metavar="TEXT", help="only measurements whose name contains TEXT (e.g. a bay)")
    w.add_argument("--no-live", action="store_true", help="collect, then print the whole table (default when not on a terminal)")

    v = sub.add_parser("validate", help="check a config file; exit 0 if valid, 1 if not")
    v.add_argument("file", help="site config YAML")
    v.add_argument("--json", action="store_true", help="machine-readable result")

    s = sub.add_parser("schema", help="print the JSON Schema of the config and of the MQTT payloads")
    s.add_argument("which", nargs="?", choices=["all", "config", "measurement", "value", "status", "heartbeat", "command",
                                                "result", "signed_command"], default="all")

    from gateway.cgmes.cli import register as cim
    from gateway.conduits.cli import register as courier
    from gateway.hmi.cli import register as hmi

    commands: dict[str, Command] = {"validate": cmd_validate, "schema": cmd_schema, "gateway": cmd_gateway,
                                    "watch": cmd_watch, "init": cmd_init, "service": cmd_service,
                                    **courier(sub), **cim(sub), **hmi(sub)}
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


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importlib.metadata is ~4.6 MB of a
    gateway's RSS at start-up otherwise)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        print(f"gridgate {version()}")  # on stdout, as argparse's own version action (parser.exit writes stderr)
        parser.exit()


def entry_points(**kw):  # noqa: ANN003, ANN201 - importlib.metadata's, imported where plugins are looked up
    from importlib.metadata import entry_points as eps

    return eps(**kw)


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("gridgate")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown (not installed)"


def shadowed() -> str | None:
    """Another installed package named like ours (``devices`` is a common name) would be imported instead
    of gridgate's: say which, rather than fail somewhere deep. gridgate's three packages sit side by side."""
    import importlib.util

    home = Path(__file__).resolve().parent.parent
    for name in ("devices", "firmware_sim"):
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin).resolve().parent.parent if spec and spec.origin else None
        if origin is not None and origin != home:
            return (f"the package {name!r} at {spec.origin} shadows gridgate's own (expected beside {home}); "  # type: ignore[union-attr]
                    "install gridgate in its own virtual environment (pipx install gridgate, or python -m venv)")
    return None


def main(argv: list[str] | None = None) -> int:
    if (why := shadowed()) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 1
    argv = global_options_first(sys.argv[1:] if argv is None else argv)
    parser, commands = build(_command_of(argv))
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    setup_logging(args.verbose, args.log_format)
    try:
        return commands[args.cmd](args)
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


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (after the global options), if it is one of :data:`LEAN`."""
    rest = [a for a in argv if a not in ("--verbose",) and not (a.startswith("-v") and set(a[1:]) == {"v"})]
    while rest and rest[0].startswith("--log-format"):
        rest = rest[1 if "=" in rest[0] else 2:]
    return rest[0] if rest and rest[0] in LEAN else None


def usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--broker`` or ``--metrics`` (checked before anything starts), or None."""
    if getattr(args, "broker", None):
        from gateway.northbound.endpoint import NorthboundConfigError, parse_url

        try:
            parse_url(args.broker)
        except NorthboundConfigError as e:
            return f"--broker: {e}"
    if getattr(args, "metrics", None):
        from gateway.metrics import parse_listen

        try:
            parse_listen(args.metrics)
        except ValueError as e:
            return str(e)
    return None


def global_options_first(argv: list[str]) -> list[str]:
    """Let ``-v``/``-vv``/``--verbose`` and ``--log-format X`` stand anywhere (``gridgate demo -v``)."""
    front: list[str] = []
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--":
            rest += [a, *it]
            break
        if a in ("--verbose",) or (a.startswith("-v") and set(a[1:]) == {"v"}):
            front.append(a)
        elif a == "--log-format":
            front += [a, next(it, "")]
        elif a.startswith("--log-format="):
            front.append(a)
        else:
            rest.append(a)
    return front + rest


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class _JournalFormatter(logging.Formatter):
    """``<N>`` syslog priority prefixes that journald turns into the entry's priority; it adds the time."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{record.name}: {super().format(record)}"


def setup_logging(verbose: int, fmt: str | None = None) -> None:
    if fmt is None:  # systemd connects stderr to the journal and says so in JOURNAL_STREAM
        fmt = "journal" if os.environ.get("JOURNAL_STREAM") else "text"
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter({"json": _JsonFormatter(), "journal": _JournalFormatter("%(message)s")}.get(
        fmt, logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if verbose < 2:  # pymodbus logs every failed connect and late reply; our drivers say it once, better
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


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
    from gateway.sitesummary import summary as site_summary

    try:
        found = site_summary(args.file)  # a large file: computed in the loader child, a part at a time
    except ConfigError as e:
        if args.json:
            print(json.dumps({"file": args.file, "valid": False, "errors": e.problems}, indent=2))
        else:
            print(f"{e}", file=sys.stderr)
            print(f"{args.file}: INVALID ({len(e.problems)} problem{'s' if len(e.problems) != 1 else ''})", file=sys.stderr)
        return 1
    summary = {"file": args.file, "valid": True, **found}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        by: dict[str, int] = {}
        for d in found["devices"].values():
            by[d["protocol"]] = by.get(d["protocol"], 0) + 1
        print(
            f"{args.file}: OK — site {found['site']}, {len(found['devices'])} devices "
            f"({', '.join(f'{n} {p}' for p, n in sorted(by.items()))}), {summary['points']} points"
        )
        for note in summary["notes"]:
            print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from gateway import shipped

    try:
        written = shipped.init(Path(args.dir), force=args.force)
    except FileExistsError as e:
        print(f"error: init: {e}", file=sys.stderr)
        return 1
    root = Path(args.dir) / "configs"
    print(f"wrote {len(written)} files under {root}: the example site, {len(shipped.names('profile'))} network profiles "
          f"and the scenarios. Files there override the shipped ones of the same name when gridgate runs in "
          f"{Path(args.dir).resolve()}; try `gridgate validate {root / shipped.EXAMPLE_SITE}`")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from gateway.cim import json_schemas
    from gateway.northbound.command_schema import json_schemas as command_schemas

    schemas = {**json_schemas(), **command_schemas()}
    out = schemas if args.which == "all" else schemas[args.which]
    print(json.dumps(out, indent=2))
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    if (rc := profiled("gateway", args)) is not None:
        return rc
    if (why := usage_error(args)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    path = args.config or default_config()
    from gateway.startup import load_gateway_site

    with interruptible():  # a 50,000-point site takes seconds to load: SIGTERM must not wait for it
        log.info("gateway: loading %s", path)
        site = load_gateway_site(path, meanwhile=lambda: _warm_imports(path))  # runtime tables and catalog; no model
        log.info("gateway: %s loaded (%s)", path, {"cache": "compiled tables from the cache"}.get(site.source, "validated"))
    if args.northbound == "mqtt" and not args.broker and not site.cfg.gateway.northbound.url:
        print("error: gateway needs --broker mqtt://host:port (or gateway.northbound.url in the config)", file=sys.stderr)
        return 2
    return run(_gateway(site, args))


def _conduit(cfg, args: argparse.Namespace):  # noqa: ANN001, ANN202 - (target text, northbound factory or None)
    """The northbound the options ask for: the broker (None), a data diode sender, or courier bundles."""
    if args.northbound == "diode":
        from gateway.conduits.northbound import DiodeNorthbound
        from gateway.conduits.signing import load_mac_key

        host, _, port = (args.diode_target or "").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("--northbound diode needs --diode-target HOST:PORT (the diode receiver)")
        key = load_mac_key(args.key_file) if args.key_file else None  # shared with the diode receiver
        if key is None:
            say("warning: --northbound diode without --key-file: diode datagrams are not authenticated")
        return f"diode udp://{host}:{port}", lambda gw, will: DiodeNorthbound(host, int(port), birth=gw.birth, key=key)
    if args.northbound == "courier":
        from gateway.conduits.northbound import CourierNorthbound
        from gateway.conduits.signing import load_signing_key

        if not args.transfer_dir or not args.key_file:
            raise ValueError("--northbound courier needs --transfer-dir DIR and --key-file FILE")
        key = load_signing_key(args.key_file)  # Ed25519 private key: the field side signs, the control side verifies
        state = Path(args.transfer_dir) / f".writer-state-{cfg.gateway.id}.json"
        return f"courier {args.transfer_dir}", lambda gw, will: CourierNorthbound(args.transfer_dir, key, cfg.gateway.id,
                                                                                  state, birth=gw.birth)
    return args.broker or cfg.gateway.northbound.url, None


def _warm_imports(path: str | Path) -> None:
    """What the gateway imports once its site is loaded, imported while the loader child compiles it: the app,
    the MQTT publisher and the driver of each protocol the file names as ``protocol: NAME`` (0.1-0.15 s less
    between the compiled site and the first value). Only imports: nothing is built from an unvalidated file; a
    driver missed here (other spelling) is imported when its devices are built, as on a restart."""
    import importlib
    import mmap

    import gateway.app  # noqa: F401
    import gateway.site.tables  # noqa: F401 - decodes the result (gateway/startup.py imports it where used)
    from gateway.protocols import NAMES, protocol

    try:  # mapped, not read: no copy of the file in the long-lived process's heap
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as raw:
            names = [name for name in NAMES if raw.find(f"protocol: {name}\n".encode()) >= 0]
    except (OSError, ValueError):  # the loader says what is wrong with the file (ValueError: an empty file)
        return
    for name in names:
        try:
            importlib.import_module(protocol(name).driver_module)
        except ImportError:
            pass  # a missing optional stack: said when its devices are built


async def _gateway(site, args) -> int:  # noqa: ANN001
    from gateway.app import Gateway, GatewayOptions
    from gateway.service import serving

    cfg = site.cfg
    password = Path(args.password_file).read_text().strip() if args.password_file else None
    target, northbound = _conduit(cfg, args)
    opts = GatewayOptions(broker=args.broker or ("none" if northbound else None), protocol=args.mqtt_version,
                          username=args.username, password=password, skip=say, inbound=not args.no_inbound)
    if northbound is not None:
        opts.northbound = northbound
    with interruptible():  # the event loop's signal handlers cannot run during this synchronous build
        log.info("gateway %s: building drivers and catalog for %d devices", cfg.gateway.id, len(cfg.devices))
        gw = Gateway(cfg, opts, catalog=site.catalog)
    del site
    import gc

    gc.freeze()  # config, catalog and drivers live as long as the process: keep them out of every GC pass
    # Each block of readings allocates a few hundred objects that live until they are published (ms): at the
    # default threshold (700) they set off ~30 young collections a second, a fifth of the gateway's CPU at
    # 10,000 points (401 collections, 0.55 s of 2.3 CPU-s); at 10,000 they almost never fill it (6, 0.05 s)
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    await gw.start()
    print(f"gateway {cfg.gateway.id} (profile {args.profile or 'flat'}, inbound={opts.inbound}): {len(gw.sources)} devices, "
          f"{len(gw.catalog)} measurements → {target}", flush=True)
    try:
        async with serving(f"{len(gw.sources)} devices, {len(gw.catalog)} measurements → {target}", args.metrics,
                                   lambda: (gw.device_states(), gw.stats())):
            await sleep_for(args.duration)
    finally:
        await gw.stop()
        stats = gw.stats()
        print(f"gateway {cfg.gateway.id}: stopped; {json.dumps(stats)}", flush=True)
    if not stats.get("sent"):
        print(f"error: gateway {cfg.gateway.id}: nothing was delivered to {target} "
              f"({gw.publisher.stats.last_error or 'never connected'})", file=sys.stderr)
        return EXIT_UNDELIVERED
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from gateway import service

    text = service.unit(args.unit, config=args.config, user=args.user, broker=args.broker)
    if args.action == "print":
        print(text, end="")
        return 0
    path = Path(args.unit_dir) / f"gridgate-{args.unit}.service"
    try:
        path.write_text(text)
    except OSError as e:
        print(f"error: service install: cannot write {path} ({e}); run as root, or `gridgate service print "
              f"{args.unit} > FILE`", file=sys.stderr)
        return 1
    print(f"wrote {path}. Next, as root:\n"
          f"  useradd --system --home /var/lib/gridgate --shell /usr/sbin/nologin {args.user}   # once\n"
          f"  install -d -m 0750 -o root -g {args.user} /etc/gridgate && cp SITE.yaml {args.config}\n"
          f"  systemctl daemon-reload && systemctl enable --now gridgate-{args.unit}\n"
          f"  journalctl -u gridgate-{args.unit} -f")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from gateway.northbound.endpoint import NorthboundConfigError, parse_url
    from gateway.watch import watch

    url = args.broker or "mqtt://127.0.0.1:1883"
    try:
        parse_url(url)
    except NorthboundConfigError as e:
        print(f"error: --broker: {e}", file=sys.stderr)
        return 2
    live = sys.stdout.isatty() and not args.no_live
    holder: dict = {}

    async def go() -> int:
        holder["state"] = await watch(url, args.duration, prefix=args.prefix, protocol=args.mqtt_version or "3.1.1",
                                      live=live, match=args.filter)
        return 0

    try:
        run(go())
    except ConnectionError as e:
        print(f"error: watch: {e}", file=sys.stderr)
        return 1
    state = holder.get("state")
    if state is not None and not live:
        from rich.console import Console

        from gateway.watch import render

        Console(width=160).print(render(state, limit=max(1, len(state.rows)), match=args.filter))
    return 0 if state is not None and state.received else 1


if __name__ == "__main__":
    sys.exit(main())
