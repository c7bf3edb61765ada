"""`gridgate demo` as a new user runs it: embedded broker, devices, gateway; a subscriber sees values."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.mosquitto import free_port
from tests.support.mqtt import Collector

ROOT = Path(__file__).resolve().parents[2]


async def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"embedded broker did not listen on {port} within {timeout} s")


async def test_demo_with_embedded_broker_publishes_measurements():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--duration", "10", "--broker-port", str(port), "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        await _wait_port(port, 20)
        async with Collector(port, ["gridgate/v1/kgm-gw1/#"], version="3.1.1") as sub:
            def meter_values() -> list[dict]:
                return [m.json for m in sub.on("/meas/KGM/INC1/CB/") if m.json["provenance"]["device"] == "pqm-inc1"]

            await sub.wait_for(lambda: len({v["measurement"]["name"] for v in meter_values()}) == 10, 15,
                               "every point of the incomer-1 PQ meter")
            status = await sub.wait_for(lambda: sub.latest("/status"), 5, "status")
            assert status["state"] == "online"
            meters = meter_values()
            for v in meters:
                assert v["quality"]["validity"] == "GOOD"
                assert v["provenance"]["protocol"] == "modbus"
            hz = [m.json["value"] for m in sub.on("/meas/KGM/INC1/CB/Frequency")]
            assert hz and all(49.7 < x < 50.3 for x in hz)
            assert len(sub.on("/catalog/")) >= 10
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert summary["values_received"] > 0 and summary["interrupted"] is False  # ran its --duration
    assert "pqm-inc1" in summary["devices_emulated"] and "pqm-inc2" in summary["devices_emulated"]
    assert summary["gateway"]["dropped"] == 0
    assert b"Traceback" not in err
