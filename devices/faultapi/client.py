"""Client of the live fault API (stdlib only): what ``gridgate fault ...`` calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devices.faultapi.state import StateFileError, running_instances


class FaultApiError(Exception):
    pass


class FaultApiChoice(FaultApiError):
    """Several emulators run (or the named one does not): the user must say which (a usage error, exit 2)."""


def _describe(st: dict) -> str:
    return f"{st.get('name')!r} (pid {st.get('pid')}{', config ' + str(st['config']) if st.get('config') else ''})"


def pick_instance(name: str | None) -> dict:
    """The running emulator to address: the one named, or the only one; else FaultApiError / FaultApiChoice."""
    try:
        running = running_instances()
    except StateFileError as e:
        raise FaultApiError(str(e)) from None
    if name is not None:
        for st in running:
            if st["name"] == name:
                return st
        raise FaultApiChoice(f"no running emulator is named {name!r}; "
                             + (f"running: {', '.join(_describe(s) for s in running)}" if running else "none is running"))
    if not running:
        raise FaultApiError("no running emulator found; start `gridgate emulate`, `gridgate demo` or "
                            "`gridgate scenario run`, or pass --url and --token")
    if len(running) > 1:
        raise FaultApiChoice("several emulators are running; choose one with --name:\n"
                             + "\n".join(f"  --name {s['name']}   pid {s.get('pid')}, {s['url']}"
                                         + (f", config {s['config']}" if s.get("config") else "") for s in running))
    return running[0]


class FaultClient:
    def __init__(self, url: str | None = None, token: str | None = None, state_file: str | Path | None = None,
                 name: str | None = None) -> None:
        self.instance: dict | None = None  # the state of the emulator addressed (None: --url/--token given)
        if url is None or token is None:
            if state_file:
                p = Path(state_file)
                try:
                    st = json.loads(p.read_text())
                except (OSError, ValueError):
                    raise FaultApiError(f"{p}: missing or unreadable; is the emulator still running?") from None
            else:
                st = pick_instance(name)
            self.instance = st
            url, token = url or st["url"], token or st["token"]
        self.url, self.token = url.rstrip("/"), token

    @property
    def addressing(self) -> str:
        """Which emulator this client talks to, for the user."""
        return _describe(self.instance) + f" at {self.url}" if self.instance and self.instance.get("name") else self.url

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
