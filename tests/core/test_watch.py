"""`gridgate watch` shows what any gateway publishes on a broker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from devices.emulator import Emulator
from gateway.app import Gateway, GatewayOptions
from tests.support.mqtt import Collector
from tests.support.sites import modbus_site

ROOT = Path(__file__).resolve().parents[2]


async def test_watch_prints_table_of_live_values(tmp_path, mosquitto):
    cfg, _ = modbus_site(tmp_path)
    async with Emulator(cfg), Gateway(cfg, GatewayOptions(broker=mosquitto.url)):
        async with Collector(mosquitto.port, ["gridgate/v1/gw-test/meas/#"]) as sub:
            await sub.wait_for(lambda: len(sub.on("/meas/")) >= 7, 5, "values")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "watch", "--broker", mosquitto.url, "--duration", "2",
            "--mqtt-version", "5", cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "SUB/INC1/CB Ia" in text and "182.4" in text and "GOOD" in text
    assert "closed" in text  # SwitchPosition shown by its alias
    assert "gw-test: online (1/1 devices up)" in text
    assert "7 measurements" in text
