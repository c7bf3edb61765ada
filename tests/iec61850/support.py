"""Test helpers: a feeder-bay IED config, and an IED running in its own process driven over stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from gateway.protocols.iec61850.config import Iec61850Device
from tests.support.mosquitto import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def bay_points(ld: str = "F1PROT", eq: str = "S1/F1/CB1", breaker_mode: str = "sbo", extra: int = 0,
               db: int = 0) -> list[dict]:
    """db: the IED deadband of every measured value (0 here: every change is a report, as the tests count them;
    without it the IED applies its default of 0.1 % of the range)."""
    pts: list[dict[str, Any]] = [
        {"name": "P", "reference": f"{ld}/MMXU1.TotW.mag.f", "scale": 1000.0, "db": db,
         "measurement": {"equipment": eq, "type": "ThreePhaseActivePower"}},
        {"name": "Q", "reference": f"{ld}/MMXU1.TotVAr.mag.f", "db": db,
         "measurement": {"equipment": eq, "type": "ThreePhaseReactivePower"}},
        {"name": "F", "reference": f"{ld}/MMXU1.Hz.mag.f", "db": db, "measurement": {"equipment": eq, "type": "Frequency"}},
        {"name": "Ia", "reference": f"{ld}/MMXU1.A.phsA.cVal.mag.f", "db": db,
         "measurement": {"equipment": eq, "type": "LineCurrent", "phases": "A"}},
        {"name": "Va", "reference": f"{ld}/MMXU1.PhV.phsA.cVal.mag.f", "db": db,
         "measurement": {"equipment": eq, "type": "PhaseVoltage", "phases": "A"}},
        {"name": "Pos", "reference": f"{ld}/XCBR1.Pos.stVal", "fc": "ST",
         "measurement": {"equipment": eq, "type": "SwitchPosition"},
         "command": {"enabled": True, "mode": breaker_mode}},
        {"name": "E", "reference": f"{ld}/MMTR1.TotWh.actVal", "fc": "ST",
         "measurement": {"equipment": eq, "type": "ActiveEnergy"}},
    ]
    for i in range(extra):
        pts.append({"name": f"An{i + 1}", "reference": f"{ld}/GGIO1.AnIn{i + 1}.mag.f", "db": db,
                    "measurement": {"equipment": eq, "type": "Voltage", "name": f"An{i + 1}"}})
    return pts


def ied_device(name: str = "F1", port: int | None = None, **kw: Any) -> Iec61850Device:
    opts = kw.pop("iec61850", {})
    return Iec61850Device.model_validate(
        {"name": name, "kind": "ied", "protocol": "iec61850", "host": "127.0.0.1", "port": port or free_port(),
         "timeout": kw.pop("timeout", 1.0), "poll_interval": kw.pop("poll_interval", 0.5),
         "iec61850": opts, "points": bay_points(f"{name}PROT", **kw)}
    )


class IedProcess:
    """An emulated IED in a child process (as in production: emulator and gateway are separate).

    Commands are JSON lines on stdin; each is acknowledged with a JSON line on stdout.
    """

    def __init__(self, device: Iec61850Device, refuse: bool = False) -> None:
        self.device = device
        self.refuse = refuse
        self.proc: subprocess.Popen | None = None

    def start(self) -> "IedProcess":
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "ied_proc.py"), self.device.model_dump_json(), "1" if self.refuse else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        line = self._readline(10)
        if not line.startswith("{"):
            raise RuntimeError(f"IED process failed: {line}{self.proc.stderr.read() if self.proc.poll() is not None else ''}")
        return self

    def _readline(self, timeout: float) -> str:
        import select

        assert self.proc and self.proc.stdout
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            raise TimeoutError("IED process did not answer")
        return self.proc.stdout.readline()

    def call(self, **cmd: Any) -> dict:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self._readline(10))
        if "error" in out:
            raise RuntimeError(out["error"])
        return out

    def update(self, point: str, value: float | int, quality: int = 0, ts: float | None = None) -> float:
        ts = round(time.time(), 6) if ts is None else ts
        self.call(op="update", point=point, value=value, quality=quality, ts=ts)
        return ts

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> "IedProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
