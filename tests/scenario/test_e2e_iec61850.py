"""An IEC 61850 IED of the example site: the full quality word reaches MQTT (test,
operatorBlocked, substituted), and the generic disconnect fault works on MMS too."""

from __future__ import annotations

import asyncio
import time

import pytest

from devices.lab import Lab, clean
from tests.scenario.helpers import example_subset

IA = "ied-f1/Ia"


@pytest.fixture
async def lab(mosquitto):
    cfg = example_subset("ied-f1")
    async with asyncio.timeout(90):
        async with Lab(cfg, broker=mosquitto.url, seed=4) as lab:
            await lab.wait_for(IA, quality="GOOD", timeout=15, since=0)
            yield lab


async def test_quality_override_flags(lab: Lab) -> None:
    for flags, want in [(["test"], "test"), (["operatorBlocked"], "operatorBlocked"), (["substituted"], "SUBSTITUTED"),
                        (["questionable", "inaccurate"], "inaccurate")]:
        t0 = time.time()
        a = await lab.inject(IA, {"kind": "quality", "flags": flags})
        await lab.wait_for(IA, quality=want, timeout=5, since=t0)
        await lab.injector.clear(a.id)
        await lab.wait_for(IA, quality="GOOD", timeout=5, since=time.time(), match=clean)


async def test_disconnect_ied(lab: Lab) -> None:
    t0 = time.time()
    a = await lab.inject("ied-f1", {"kind": "disconnect"})
    lost = await lab.wait_for(IA, quality="INVALID", timeout=10, since=t0)
    assert lost.quality.get("failure")
    await lab.injector.clear(a.id)
    await lab.wait_for(IA, quality="GOOD", timeout=20, since=time.time())
