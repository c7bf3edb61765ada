"""The scenario fault engine on the 104 RTU of configs/iec104-rtu.yaml (through devices.lab.Lab, the
harness `gridgate scenario` and the live fault API use): the generic disconnect fault (RTU stops, INVALID
on MQTT, GI after it comes back), silent, refused STARTDT and time-tag jumps as MQTT shows them, and
firmware quality faults reaching MQTT through the QDS (control refusal: test_e2e_mqtt; the other link
faults, run directly: test_link_faults)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest

from devices.faultapi.client import FaultClient
from devices.lab import Lab
from devices.scenario.ports import with_free_ports
from gateway.config import load_config
from tests.support.wait import until

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "iec104-rtu.yaml"
TAP = "rtu-ash/GT1_TAP"


@pytest.fixture
async def lab(mosquitto, tmp_path):
    cfg = with_free_ports(load_config(CONFIG))
    async with asyncio.timeout(90):
        async with Lab(cfg, broker=mosquitto.url, seed=3, api=True, api_state=tmp_path / "api.json") as lab:
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
    for flags, want in [(["operatorBlocked"], "operatorBlocked"), (["substituted"], "SUBSTITUTED"), (["invalid"], "INVALID"),
                        (["oldData"], "oldData")]:  # NT → QUESTIONABLE + oldData
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


def driver(lab: Lab, name: str):  # noqa: ANN201 - the gateway's Iec104Source
    return next(s for s in lab.gateway.sources if s.device == name)


async def test_refused_startdt_through_the_live_api_keeps_the_rtu_invalid_on_mqtt_until_cleared(lab: Lab) -> None:
    api = FaultClient(state_file=lab.api.state_file)
    t0 = time.time()
    a = await asyncio.to_thread(api.inject, {"device": "rtu-ash"}, {"kind": "startdt_refused"}, None, "no-startdt")
    assert a["id"] == "no-startdt"
    lost = await lab.wait_for(TAP, quality="INVALID", timeout=20, since=t0)
    assert lost.quality.get("failure") and lost.quality.get("oldData")
    rtu, src = lab.emu.devices["rtu-ash"].server, driver(lab, "rtu-ash")
    await until(lambda: src.status_counters()["startdt_unconfirmed"] >= 1, 30)  # t1 of the site file: min(15 s, 1.8 × timeout 3 s)
    assert rtu.stats["link"]["startdt_withheld"] >= 1 and not src.connected
    assert "never confirmed STARTDT" in src.state.last_error
    with pytest.raises(AssertionError):  # connected without STARTDT is not connected: nothing GOOD comes
        await lab.wait_for(TAP, quality="GOOD", timeout=2, since=t0)
    failures = src.state.failures
    await asyncio.to_thread(api.clear, "no-startdt")
    await lab.wait_for(TAP, quality="GOOD", timeout=30, since=time.time())
    assert src.state.reconnects >= 1 and src.state.failures >= failures >= 1


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_a_time_tag_jump_reaches_mqtt_flagged_with_the_receive_time(lab: Lab) -> None:
    s0 = await lab.wait_for(TAP, quality="GOOD", timeout=20, since=0)
    assert abs(_epoch(s0.timestamp) - s0.at) < 3600  # the RTU's own time before the fault
    jump = await lab.inject("rtu-ash", {"kind": "time_jump", "seconds": 7200})
    t0 = time.time()
    move = await lab.inject(TAP, {"kind": "set_state", "value": float(s0.value) + 1})
    s = await lab.wait_for(TAP, value=float(s0.value) + 1, timeout=15, since=t0)
    assert s.quality["validity"] == "QUESTIONABLE" and s.quality.get("inconsistent"), s.quality
    assert t0 - 0.01 <= _epoch(s.timestamp) <= s.at + 0.01  # the gateway's receive time, not two hours ahead
    assert driver(lab, "rtu-ash").status_counters()["time_tags_rejected"] >= 1
    await lab.injector.clear(jump.id)
    t1 = time.time()
    await lab.injector.clear(move.id)  # the tap goes back: a change stamped by the RTU's correct clock
    back = await lab.wait_for(TAP, value=float(s0.value), quality="GOOD", timeout=15, since=t1)
    assert not back.quality.get("inconsistent") and abs(_epoch(back.timestamp) - back.at) < 60
