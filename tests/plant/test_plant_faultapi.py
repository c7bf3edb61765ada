"""Physical events through the live fault API (HTTP client, as `gridgate fault inject` uses it):
the plant reacts and the published measurements follow, over a real broker."""

from __future__ import annotations

import asyncio
import time

import pytest

from devices.faultapi.client import FaultApiError, FaultClient
from devices.lab import Lab
from tests.scenario.helpers import example_subset


@pytest.fixture
async def lab(tmp_path, mosquitto):
    cfg = example_subset("ied-f1", "pqm-inc1", "pqm-inc2")
    async with asyncio.timeout(90):
        async with Lab(cfg, broker=mosquitto.url, api=True, api_state=tmp_path / "api.json") as lab:
            for p in ("ied-f1/Ia", "ied-f1/CB", "pqm-inc1/P", "pqm-inc2/P"):
                await lab.wait_for(p, quality="GOOD", timeout=20, since=0)
            yield lab


def last(lab: Lab, point: str) -> float:
    return lab.samples(point)[-1].value


async def test_short_circuit_trips_f1_and_loss_of_supply_blacks_out_the_site(lab: Lab) -> None:
    c = FaultClient(state_file=lab.api.state_file)
    incomers = last(lab, "pqm-inc1/P") + last(lab, "pqm-inc2/P")
    t0 = time.time()
    a = await asyncio.to_thread(c.inject, {"point": "ied-f1/Ia"}, {"kind": "short_circuit", "impedance": 3.0}, None, "sc")
    assert a["points"] == ["ied-f1/Ia"]
    fault = await lab.wait_for("ied-f1/Ia", timeout=10, since=t0, match=lambda s: s.value > 1000)
    assert 1500 < fault.value < 3000  # about 2 kA through 3 ohm
    await lab.wait_for("ied-f1/PTOC_Str", value=1, timeout=10, since=t0)
    await lab.wait_for("ied-f1/PTOC_Op", value=1, timeout=10, since=t0)
    await lab.wait_for("ied-f1/CB", value=1, timeout=10, since=t0)  # tripped by its own relay
    await lab.wait_for("ied-f1/Ia", value=0, timeout=10, since=t0)
    f1_load = [s.value for s in lab.samples("ied-f1/P") if s.at < t0][-1]
    # the incomers lose F1's load (the meters poll every second)
    await lab.wait_for("pqm-inc1/P", timeout=10, since=time.time() + 0.5,
                       match=lambda s: abs(s.value + last(lab, "pqm-inc2/P") - (incomers - f1_load)) < 150 + 0.1 * f1_load)
    await asyncio.to_thread(c.clear, "sc")

    t1 = time.time()
    await asyncio.to_thread(c.inject, {"point": "pqm-inc1/Vab"}, {"kind": "loss_of_supply"}, None, "los")
    await lab.wait_for("pqm-inc1/Vab", value=0, timeout=10, since=t1)
    await lab.wait_for("pqm-inc2/P", value=0, timeout=10, since=t1)
    await lab.wait_for("pqm-inc1/Hz", value=0, timeout=10, since=t1)
    await asyncio.to_thread(c.clear, "los")
    await lab.wait_for("pqm-inc2/P", timeout=10, since=time.time(), match=lambda s: s.value > 1000)

    with pytest.raises(FaultApiError, match="400 short_circuit on pqm-inc1/P: the point reads KGM/INC1/CB, not a plant load"):
        await asyncio.to_thread(c.inject, {"point": "pqm-inc1/P"}, {"kind": "short_circuit"})
    with pytest.raises(FaultApiError, match="400 load_step on pqm-inc1/ImportKWh: the point is not a plant quantity"):
        await asyncio.to_thread(c.inject, {"point": "pqm-inc1/ImportKWh"}, {"kind": "load_step", "factor": 2})
    # a saturating CT is an event on the breaker (its CTs), not on the line
    sat = await asyncio.to_thread(c.inject, {"point": "ied-f1/CB"}, {"kind": "ct_saturation", "factor": 0.2, "knee_a": 500},
                                  None, "ct")
    assert sat["points"] == ["ied-f1/CB"]
    assert [f["id"] for f in await asyncio.to_thread(c.list)] == ["ct"]
    await asyncio.to_thread(c.clear, "ct")
    with pytest.raises(FaultApiError, match="400 ct_saturation on ied-f1/Ia: the point reads KGM/F1/FDR, not a plant switch"):
        await asyncio.to_thread(c.inject, {"point": "ied-f1/Ia"}, {"kind": "ct_saturation", "factor": 0.5})
