"""The scenario fault engine on the 104 RTU of configs/iec104-rtu.yaml (through devices.lab.Lab, the
harness `gridgate scenario` uses): the generic disconnect fault (RTU stops, INVALID on MQTT, GI
after it comes back), and firmware quality faults reaching MQTT through the QDS (control refusal: test_e2e_mqtt)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devices.lab import Lab
from devices.scenario.ports import with_free_ports
from gateway.config import load_config
from tests.support.wait import until

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "iec104-rtu.yaml"
TAP = "rtu-ash/GT1_TAP"


@pytest.fixture
async def lab(mosquitto):
    cfg = with_free_ports(load_config(CONFIG))
    async with asyncio.timeout(90):
        async with Lab(cfg, broker=mosquitto.url, seed=3) as lab:
            await lab.wait_for(TAP, quality="GOOD", timeout=20, since=0)
            yield lab


async def test_disconnect_rtu_and_back(lab: Lab) -> None:
    t0 = time.time()
    a = await lab.inject("rtu-ash", {"kind": "disconnect"})
    lost = await lab.wait_for(TAP, quality="INVALID", timeout=15, since=t0)
    assert lost.quality.get("failure") and lost.quality.get("oldData")
    await lab.injector.clear(a.id)
    await lab.wait_for(TAP, quality="GOOD", timeout=30, since=time.time())


async def test_quality_faults_travel_as_quality_descriptor_bits(lab: Lab) -> None:
    for flags, want in [(["operatorBlocked"], "operatorBlocked"), (["substituted"], "SUBSTITUTED"), (["invalid"], "INVALID")]:
        t0 = time.time()
        a = await lab.inject(TAP, {"kind": "quality", "flags": flags})
        await lab.wait_for(TAP, quality=want, timeout=10, since=t0)
        await lab.injector.clear(a.id)
        await lab.wait_for(TAP, quality="GOOD", timeout=10, since=time.time())


async def test_silent_rtu_accepts_but_never_answers_and_comms_recover(lab: Lab) -> None:
    t0 = time.time()
    a = await lab.inject("rtu-ash", {"kind": "silent"})
    lost = await lab.wait_for(TAP, quality="INVALID", timeout=20, since=t0)
    assert lost.quality.get("failure")
    rtu = lab.emu.devices["rtu-ash"].server
    await until(lambda: rtu.stats["link"]["silent_connections"] >= 1, 15)  # the gateway connects again, ignored
    with pytest.raises(AssertionError):  # connected to a silent RTU is not connected: nothing GOOD comes
        await lab.wait_for(TAP, quality="GOOD", timeout=2, since=t0)
    await lab.injector.clear(a.id)
    await lab.wait_for(TAP, quality="GOOD", timeout=30, since=time.time())
