"""aiohttp server of the mimic: the static page, vendored libraries and ``/site.json``; no other state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

STATIC = Path(__file__).parent / "static"


def check_ws_url(url: str) -> str:
    """The page's broker address: ws:// or wss:// with host and port, else a ValueError naming the fix."""
    expected = "expected ws://HOST:PORT or wss://HOST:PORT (the broker's WebSocket listener)"
    try:
        u = urlsplit(url)
    except ValueError as e:  # urllib's "Invalid IPv6 URL"
        raise ValueError(f"--ws-url {url!r}: {e}; {expected}") from None
    if u.scheme not in ("ws", "wss") or not u.hostname:
        raise ValueError(f"--ws-url {url!r}: {expected}")
    try:
        _ = u.port  # urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"--ws-url {url!r}: the port is not a number in 1-65535") from None
    return url


def _headers(ws_url: str) -> dict[str, str]:
    u = urlsplit(ws_url)
    origin = f"{u.scheme}://{u.netloc}"
    return {
        "Content-Security-Policy": (f"default-src 'self'; connect-src 'self' {origin}; img-src 'self' data:; worker-src 'self' blob:; "
                                    "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def make_app(site: dict[str, Any]) -> web.Application:
    headers = _headers(site["wsUrl"])
    body = json.dumps(site, separators=(",", ":"))

    @web.middleware
    async def security(request: web.Request, handler):
        resp = await handler(request)
        resp.headers.update(headers)
        return resp

    async def index(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def site_json(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app = web.Application(middlewares=[security])
    app.router.add_get("/", index)
    app.router.add_get("/site.json", site_json)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    return app


class HmiServer:
    """``await HmiServer(site, host, port).start()``; ``.url`` is the page; ``await .stop()``."""

    def __init__(self, site: dict[str, Any], host: str = "127.0.0.1", port: int = 8080) -> None:
        self.site, self.host, self.port = site, host, port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> "HmiServer":
        self._runner = web.AppRunner(make_app(self.site), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(f"the mimic cannot listen on {self.host}:{self.port} ({e.strerror or e}); "
                          "choose another port (demo --hmi PORT, hmi --port PORT)") from None
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
