"""Loopback HTTP + bearer token, served inside the emulator process.

``GET /faults`` lists, ``POST /faults`` injects ``{"target": {...}, "fault": {...},
"duration": "30s"}``, ``DELETE /faults/<id>`` clears one, ``DELETE /faults`` all.
Never listens beyond loopback unless asked (``allow_remote``), and even then answers only
loopback peers unless ``allow_remote``; every request needs the token, which is written
with the URL to a 0600 state file for the CLI.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.scenario.inject import Injector
from devices.scenario.model import Target
from devices.scenario.resolve import TargetError
from gateway.site.model import parse_duration

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


def default_state_file() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/gridgate-{os.getuid()}"
    return Path(base) / "gridgate" / "faultapi.json"


def is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class InjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: Target
    fault: dict[str, Any]
    duration: float | None = Field(None, description="auto-clear after this (500ms, 30s, 5m)")
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.#-]{1,64}$")

    @field_validator("duration", mode="before")
    @classmethod
    def _d(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)


class FaultApiServer:
    def __init__(self, injector: Injector, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 state_file: str | Path | None = None, allow_remote: bool = False) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"fault API host {host!r} is not a loopback address; use 127.0.0.1 (or pass allow_remote)")
        self.injector = injector
        self.host, self._port = host, port
        self.token = token or secrets.token_urlsafe(24)
        self.allow_remote = allow_remote
        self.state_file = Path(state_file) if state_file else default_state_file()
        self.refused = {"non_loopback": 0, "unauthorised": 0, "bad_request": 0}
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}"

    async def start(self) -> "FaultApiServer":
        self._server = await asyncio.start_server(self._handle, self.host, self._port)
        self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": self.url, "token": self.token, "pid": os.getpid()}, f)
        return self

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        try:
            if json.loads(self.state_file.read_text()).get("token") == self.token:
                self.state_file.unlink()
        except (OSError, ValueError):
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("?",))[0]
        try:
            status, body = await asyncio.wait_for(self._serve(peer, reader), 10)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            status, body = 408, {"error": "request incomplete or too slow"}
        data = json.dumps(body).encode()
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                  404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
                  413: "Payload Too Large"}.get(status, "Error")
        try:
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _serve(self, peer: str, reader: asyncio.StreamReader) -> tuple[int, Any]:
        if not self.allow_remote and not is_loopback(peer):
            self.refused["non_loopback"] += 1
            log.warning("fault API: refused request from non-loopback peer %s", peer)
            return 403, {"error": f"peer {peer} is not loopback; the fault API answers only this machine"}
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, path, _ = lines[0].split(" ", 2)
        except ValueError:
            self.refused["bad_request"] += 1
            return 400, {"error": "malformed request line"}
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if not secrets.compare_digest(headers.get("authorization", ""), f"Bearer {self.token}"):
            self.refused["unauthorised"] += 1
            log.warning("fault API: refused %s %s from %s without the token", method, path, peer)
            return 401, {"error": "missing or wrong token; send 'Authorization: Bearer <token>' (see the state file)"}
        n = int(headers.get("content-length", "0") or 0)
        if n > MAX_BODY:
            return 413, {"error": f"body of {n} bytes is over the {MAX_BODY} byte limit"}
        raw = await reader.readexactly(n) if n else b""
        return await self._route(method, path.rstrip("/"), raw)

    async def _route(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        inj = self.injector
        if path == "/faults" and method == "GET":
            return 200, {"active": inj.list()}
        if path == "/faults" and method == "POST":
            try:
                req = InjectRequest.model_validate_json(raw or b"{}")
                a = await inj.inject(req.target, req.fault, req.duration, req.id)
            except ValidationError as e:
                self.refused["bad_request"] += 1
                return 400, {"error": "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())}
            except (TargetError, KeyError, ValueError) as e:
                self.refused["bad_request"] += 1
                return 400, {"error": str(e).strip('"')}
            return 201, a.describe()
        if path == "/faults" and method == "DELETE":
            return 200, {"cleared": await inj.clear_all()}
        if path.startswith("/faults/") and method == "DELETE":
            fid = path.removeprefix("/faults/")
            try:
                return 200, (await inj.clear(fid)).describe()
            except KeyError as e:
                return 404, {"error": str(e).strip('"')}
        if path.startswith("/faults"):
            return 405, {"error": f"{method} {path}: use GET/POST /faults or DELETE /faults[/<id>]"}
        return 404, {"error": f"no resource {path}; use /faults"}
