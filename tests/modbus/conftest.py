"""Fixtures: a started emulated device on an ephemeral port and a raw connection to it."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from devices.modbus import ArrayDataModel, ModbusServer
from tests.modbus.mbs_raw import TIMEOUT, Raw, make_model


@pytest.fixture
def model() -> ArrayDataModel:
    return make_model()


@pytest.fixture
async def server(model: ArrayDataModel) -> AsyncIterator[ModbusServer]:
    s = ModbusServer(model, unit_id=1)
    await s.start()
    yield s
    await asyncio.wait_for(s.stop(), TIMEOUT)


@pytest.fixture
async def raw(server: ModbusServer) -> AsyncIterator[Raw]:
    c = await Raw.open(server.port)
    yield c
    await c.close()
