"""Loopback HTTP + bearer token, served inside the emulator process (aiohttp's server).

``GET /faults`` lists, ``POST /faults`` injects ``{"target": {...}, "fault": {...},
"duration": "30s"}``, ``DELETE /faults/<id>`` clears one, ``DELETE /faults`` all.
Never listens beyond loopback unless asked (``allow_remote``), and even then answers only
loopback peers unless ``allow_remote``; every request needs the token (``Authorization:
Bearer <token>``, scheme case-insensitive). HTTP parsing, header and body limits are
aiohttp's: every malformed request gets a 4xx with a JSON error, never silence.
The URL and token go to a 0600 state file (``state.py``), created exclusively and removed on stop.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.faultapi.state import (
    StateFileBusy,
    check_name,
    default_state_file,
    instance_file,
    name_for,
    remove_state,
    state_path,
    write_state,
)
from devices.scenario.inject import Injector
from devices.scenario.model import Target
from devices.scenario.resolve import TargetError
from gateway.site.model import parse_duration

__all__ = ["FaultApiServer", "InjectRequest", "default_state_file", "is_loopback"]

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
MAX_HEADER_FIELD = 8 * 1024  # one header line; the whole block is bounded by aiohttp's field count


class _OneLine(logging.Filter):
    """aiohttp logs a malformed request with a traceback; a hostile client is worth one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg, record.args = f"{record.getMessage()} {record.exc_info[1]!s:.200}", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


http_log = logging.getLogger("devices.faultapi.http")
http_log.addFilter(_OneLine())


def is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive, RFC 7235)."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class InjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: Target
    fault: dict[str, Any]
    duration: float | None = Field(None, description="auto-clear after this (500ms, 30s, 5m)")
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.#-]{1,64}$")

    @field_validator("duration", mode="before")
    @classmethod
    def _d(cls, v: Any) -> float | None:
        if v is None:
            return None
        d = parse_duration(v)
        if not math.isfinite(d) or d <= 0:
            raise ValueError(f"duration must be a positive finite time such as 500ms or 30s, got {v!r}")
        return d


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class FaultApiServer:
    def __init__(self, injector: Injector, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 state_file: str | Path | None = None, allow_remote: bool = False, *, name: str | None = None,
                 config: str | Path | None = None) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"fault API host {host!r} is not a loopback address; use 127.0.0.1 (or pass allow_remote)")
        self.injector = injector
        self.host, self._port = host, port
        self.token = token or secrets.token_urlsafe(24)
        self.allow_remote = allow_remote
        self._state_arg = Path(state_file) if state_file else None
        self._explicit_name = name is not None
        self.name = check_name(name) if name is not None else name_for(config)
        self.config = str(config) if config else None
        self.state_file = self._state_arg or state_path()
        self.refused = {"non_loopback": 0, "unauthorised": 0, "bad_request": 0}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        assert self._runner is not None and self._runner.addresses, "fault API not started"
        return self._runner.addresses[0][1]

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_BODY, middlewares=[self._guard],
            handler_args={"max_field_size": MAX_HEADER_FIELD, "max_line_size": MAX_HEADER_FIELD, "logger": http_log},
        )
        app.router.add_get("/faults", self._list)
        app.router.add_post("/faults", self._inject)
        app.router.add_delete("/faults", self._clear_all)
        app.router.add_delete("/faults/{id}", self._clear)
        return app

    async def start(self) -> "FaultApiServer":
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        try:
            await self._site.start()
            state = {"url": self.url, "token": self.token, "pid": os.getpid(), "name": self.name, "config": self.config}
            if self._state_arg is not None:
                write_state(self.state_file, state)
            else:
                self._write_instance(state)
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        return self

    def _write_instance(self, state: dict) -> None:
        """``faultapi/<name>.json``; a derived name already taken by a running emulator gets ``-2``, ``-3``...
        An explicit ``--name`` that is taken is refused (the CLI could not tell the two apart)."""
        base = self.name
        for n in range(1, 100):
            name = base if n == 1 else f"{base}-{n}"
            self.state_file = instance_file(name, create=True)
            try:
                write_state(self.state_file, {**state, "name": name})
            except StateFileBusy:
                if self._explicit_name:
                    raise StateFileBusy(f"another running emulator is named {base!r} ({self.state_file}); "
                                        "give this one a different --name") from None
                continue
            if name != base:
                log.warning("fault API: an emulator named %r is already running; this one is %r "
                            "(`gridgate fault --name %s ...`)", base, name, name)
            self.name = name
            return
        raise StateFileBusy(f"fault API: 99 running emulators named {base!r}-N; give this one a --name")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            remove_state(self.state_file, self.token)

    # ---------------------------------------------------------------- checks (every request)

    def peer_refusal(self, peer: str) -> web.Response | None:
        """403 unless the peer is on this machine (or remote peers are allowed)."""
        if self.allow_remote or is_loopback(peer):
            return None
        self.refused["non_loopback"] += 1
        log.warning("fault API: refused request from non-loopback peer %s", peer)
        return _error(403, f"peer {peer} is not loopback; the fault API answers only this machine")

    def auth_refusal(self, header: str, what: str, peer: str) -> web.Response | None:
        """401 unless the header carries our token (compared in constant time)."""
        token = bearer_token(header)
        if token is not None and secrets.compare_digest(token.encode(), self.token.encode()):
            return None
        self.refused["unauthorised"] += 1
        log.warning("fault API: refused %s from %s without the token", what, peer)
        return _error(401, "missing or wrong token; send 'Authorization: Bearer <token>' (see the state file)")

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Peer and token first, then the route; one JSON reply per request and the connection closed
        (a CLI tool's API needs no keep-alive, and idle sockets cannot pile up)."""
        resp = await self._checked(request, handler)
        resp.force_close()
        return resp

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or "?"
        refusal = self.peer_refusal(peer) or self.auth_refusal(
            request.headers.get("Authorization", ""), f"{request.method} {request.path}", peer
        )
        if refusal is not None:
            return refusal
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            self.refused["bad_request"] += 1
            return _error(413, f"body over the {MAX_BODY} byte limit")
        except web.HTTPMethodNotAllowed:
            return _error(405, f"{request.method} {request.path}: use GET/POST /faults or DELETE /faults[/<id>]")
        except web.HTTPNotFound:
            return _error(404, f"no resource {request.path}; use /faults")
        except web.HTTPException as e:
            self.refused["bad_request"] += 1
            return _error(e.status if e.status >= 400 else 400, e.reason)

    # ---------------------------------------------------------------- routes

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"active": self.injector.list()})

    async def _inject(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            req = InjectRequest.model_validate_json(raw or b"{}")
            a = await self.injector.inject(req.target, req.fault, req.duration, req.id)
        except ValidationError as e:
            self.refused["bad_request"] += 1
            return _error(400, "; ".join(f"{'.'.join(map(str, x['loc'])) or 'body'}: {x['msg']}" for x in e.errors()))
        except (TargetError, KeyError, ValueError) as e:
            self.refused["bad_request"] += 1
            return _error(400, str(e).strip('"'))
        return web.json_response(a.describe(), status=201)

    async def _clear_all(self, request: web.Request) -> web.Response:
        return web.json_response({"cleared": await self.injector.clear_all()})

    async def _clear(self, request: web.Request) -> web.Response:
        try:
            return web.json_response((await self.injector.clear(request.match_info["id"])).describe())
        except KeyError as e:
            return _error(404, str(e).strip('"'))
