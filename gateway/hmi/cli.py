"""`gridgate hmi` and the `demo --hmi PORT` option: serve the browser mimic."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import Any, Callable
from urllib.parse import urlsplit

DEFAULT_CONFIG = "configs/primary-substation.yaml"


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    h = sub.add_parser("hmi", help="serve the browser control-room mimic (MQTT over WebSockets)")
    h.add_argument("--config", "-c", default=None, help=f"site config YAML (default: {DEFAULT_CONFIG})")
    h.add_argument("--broker", default=None, help="MQTT broker URL the gateway publishes to; checked at start")
    h.add_argument("--ws-url", required=True, help="the broker's WebSocket listener as the browser reaches it, ws://HOST:PORT")
    h.add_argument("--port", type=int, default=8080, help="HTTP port of the page (default 8080)")
    h.add_argument("--bind", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    h.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    return {"hmi": cmd_hmi}


def add_demo_options(d: argparse.ArgumentParser) -> None:
    d.add_argument("--hmi", type=int, default=None, metavar="PORT", help="also serve the browser mimic on 127.0.0.1:PORT")
    d.add_argument("--ws-url", default=None, help="with --broker: the broker's WebSocket listener, ws://HOST:PORT")


def cmd_hmi(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.hmi.server import check_ws_url
    from gateway.runtime import default_config as _default_config
    from gateway.runtime import run as _run

    try:
        ws_url = check_ws_url(args.ws_url)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = load_config(args.config or _default_config())
    if args.broker and not _reachable(args.broker):
        print(f"warning: broker {args.broker} is not reachable now; the page shows the broker state once it is", file=sys.stderr)
    return _run(_serve(cfg, ws_url, args.bind, args.port, args.duration))


async def _serve(cfg: Any, ws_url: str, bind: str, port: int, duration: float | None) -> int:
    from gateway.hmi.server import HmiServer
    from gateway.hmi.site import site_description

    server = await HmiServer(site_description(cfg, ws_url), bind, port).start()
    print(f"hmi: {server.url} (broker WebSocket {ws_url}); Ctrl-C to stop", flush=True)
    try:
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)
    finally:
        await server.stop()
    return 0


async def start_for_demo(cfg: Any, args: argparse.Namespace, ws_url: str | None) -> Any:
    """The demo's mimic (None without ``--hmi``): needs the embedded broker's or ``--ws-url``'s WebSocket listener."""
    if getattr(args, "hmi", None) is None:
        return None
    from gateway.hmi.server import HmiServer, check_ws_url
    from gateway.hmi.site import site_description

    ws = getattr(args, "ws_url", None) or ws_url
    if ws is None:
        raise ValueError("demo --hmi with --broker needs --ws-url ws://HOST:PORT (the broker's WebSocket listener)")
    server = await HmiServer(site_description(cfg, check_ws_url(ws)), "127.0.0.1", args.hmi).start()
    print(f"demo: mimic on {server.url}", file=sys.stderr, flush=True)
    return server


def _reachable(url: str) -> bool:
    u = urlsplit(url)
    try:
        socket.create_connection((u.hostname or "127.0.0.1", u.port or 1883), timeout=2).close()
        return True
    except OSError:
        return False
