"""The small Modbus site with the live fault API open, for the fault API's tests."""

from __future__ import annotations

import asyncio

import pytest

from devices.lab import Lab
from tests.support.sites import modbus_site

IA = "meter1/Ia"


@pytest.fixture
async def lab(tmp_path, mosquitto):
    cfg, _ = modbus_site(tmp_path, poll="100ms", timeout="250ms")
    async with asyncio.timeout(60):
        async with Lab(cfg, broker=mosquitto.url, api=True, api_state=tmp_path / "api.json") as lab:
            await lab.wait_for(IA, quality="GOOD", timeout=5, since=0)
            yield lab
