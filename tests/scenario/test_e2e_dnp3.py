"""Quality faults need a protocol that carries quality: the example site's DNP3 RTU,
emulated, through the gateway to Mosquitto. Plus the generic disconnect and IIN faults."""

from __future__ import annotations

import asyncio
import time

import pytest

from devices.lab import Lab, clean
from tests.scenario.helpers import example_subset

P = "rtu1/T1_P"


@pytest.fixture
async def lab():
    cfg = example_subset("rtu1")
    async with asyncio.timeout(90):
        async with Lab(cfg, broker="mosquitto", seed=3) as lab:  # the Lab starts its own Mosquitto
            await lab.wait_for(P, quality="GOOD", timeout=15, since=0)
            yield lab


async def test_quality_faults_reach_mqtt(lab: Lab) -> None:
    for fault, want, flag in [
        ({"kind": "dropout"}, "INVALID", None),
        ({"kind": "quality", "flags": ["substituted"]}, "SUBSTITUTED", None),
        ({"kind": "out_of_range", "value": 1e6}, None, "outOfRange"),
    ]:
        t0 = time.time()
        a = await lab.inject(P, fault)
        s = await lab.wait_for(P, quality=want or flag, timeout=6, since=t0)
        if fault["kind"] == "out_of_range":
            assert s.value == pytest.approx(1e6, rel=1e-6)
        await lab.injector.clear(a.id)
        await lab.wait_for(P, quality="GOOD", timeout=6, since=time.time(), match=clean)


async def test_disconnect_and_restart_flags(lab: Lab) -> None:
    t0 = time.time()
    a = await lab.inject("rtu1", {"kind": "disconnect"})
    lost = await lab.wait_for(P, quality="INVALID", timeout=10, since=t0)
    assert lost.quality.get("failure") and lost.quality.get("oldData")
    assert "rtu1" not in lab.emu.devices  # stopped: connections are refused
    await lab.injector.clear(a.id)
    await lab.wait_for(P, quality="GOOD", timeout=15, since=time.time())
    src = lab.gateway.sources[0]
    polls = src.stats["integrity_polls"]
    b = await lab.inject("rtu1", {"kind": "iin", "bits": ["DEVICE_RESTART", "EVENT_BUFFER_OVERFLOW"]})
    os_ = lab.emu.devices["rtu1"].server
    assert os_.restart_iin and os_.events.overflow
    # the master reacts to IIN1.7 / IIN2.3 with a fresh integrity poll
    deadline = time.monotonic() + 10
    while src.stats["integrity_polls"] <= polls and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert src.stats["integrity_polls"] > polls
    await lab.injector.clear(b.id)
