"""Client of the live fault API (stdlib only): what ``gridgate fault ...`` calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devices.faultapi.state import StateFileError, default_state_file


class FaultApiError(Exception):
    pass


class FaultClient:
    def __init__(self, url: str | None = None, token: str | None = None, state_file: str | Path | None = None) -> None:
        if url is None or token is None:
            p = Path(state_file) if state_file else None
            try:
                p = p or default_state_file()
                st = json.loads(p.read_text())
            except StateFileError as e:
                raise FaultApiError(str(e)) from None
            except (OSError, ValueError):
                raise FaultApiError(
                    f"no running emulator found ({p} missing or unreadable); start `gridgate scenario run` or pass --url and --token"
                ) from None
            url, token = url or st["url"], token or st["token"]
        self.url, self.token = url.rstrip("/"), token

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error", "")
            except ValueError:
                msg = ""
            raise FaultApiError(f"{method} {path}: {e.code} {msg}") from None
        except (urllib.error.URLError, OSError) as e:
            raise FaultApiError(f"cannot reach the fault API at {self.url}: {getattr(e, 'reason', e)}") from None

    def inject(self, target: dict, fault: dict, duration: float | str | None = None, id: str | None = None) -> dict:
        return self._call("POST", "/faults", {"target": target, "fault": fault, "duration": duration, "id": id})

    def clear(self, fid: str | None = None) -> Any:
        return self._call("DELETE", f"/faults/{fid}" if fid else "/faults")

    def list(self) -> list[dict]:
        return self._call("GET", "/faults")["active"]
