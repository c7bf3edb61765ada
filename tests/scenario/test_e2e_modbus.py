"""Every Modbus comms fault and every data fault, injected through the Lab, seen on MQTT."""

from __future__ import annotations

import asyncio
import time

import pytest

from devices.lab import Lab
from tests.support.sites import modbus_site

IA = "meter1/Ia"  # holding 10, uint16, scale 0.1, constant 182.4
HZ = "meter1/Hz"  # input 0: another block, another function code


@pytest.fixture
async def lab(tmp_path, mosquitto):
    cfg, _ = modbus_site(tmp_path, poll="100ms", timeout="250ms")
    async with asyncio.timeout(60):
        async with Lab(cfg, broker=mosquitto.url, seed=1) as lab:
            await lab.wait_for(IA, quality="GOOD", value=182.4, tolerance=1e-3, timeout=5, since=0)
            yield lab


@pytest.mark.parametrize("fault", [
    {"kind": "silent"},
    {"kind": "delay", "ms": 600},
    {"kind": "disconnect"},
    {"kind": "trickle", "bytes_per_s": 15},
    {"kind": "wrong_tid"},
    {"kind": "short_reply", "bytes": 3},
], ids=lambda f: f["kind"])
async def test_comms_fault_marks_device_invalid_then_recovers(lab: Lab, fault: dict) -> None:
    t0 = time.time()
    a = await lab.inject("meter1", fault)
    lost = await lab.wait_for(IA, quality="INVALID", timeout=4, since=t0)
    assert lost.quality.get("failure") is True  # comms lost, not a bad value
    assert lost.value == pytest.approx(182.4, abs=1e-3)  # the last value is kept
    detect = lost.at - t0
    assert detect < 2.0, f"{fault['kind']} detected after {detect:.2f}s"
    await lab.injector.clear(a.id)
    t1 = time.time()
    back = await lab.wait_for(IA, quality="GOOD", timeout=8, since=t1)
    assert back.value == pytest.approx(182.4, abs=1e-3)
    assert lab.injector.list() == []


async def test_short_delay_keeps_values_good(lab: Lab) -> None:
    t0 = time.time()
    await lab.inject("meter1", {"kind": "delay", "ms": 40, "jitter_ms": 20})
    await asyncio.sleep(1.0)
    assert all(s.quality.get("validity") == "GOOD" for s in lab.samples(IA, since=t0))
    assert lab.emu.devices["meter1"].server.stats.responses > 0


async def test_exception_reply_only_hits_its_range(lab: Lab) -> None:
    t0 = time.time()
    await lab.inject("meter1", {"kind": "exception", "code": 2, "function": 3, "start": 10, "end": 10})
    bad = await lab.wait_for(IA, quality="INVALID", timeout=3, since=t0)
    assert bad.quality.get("badReference") is True  # 02 illegal data address
    await asyncio.sleep(0.5)
    assert all(s.quality.get("validity") == "GOOD" for s in lab.samples(HZ, since=t0))  # another block
    assert lab.emu.devices["meter1"].server.stats.exceptions.get(2, 0) >= 1


DATA = [
    ({"kind": "stuck", "value": 100}, dict(value=100)),
    ({"kind": "offset", "value": 10}, dict(value=192.4, tolerance=0.051)),
    ({"kind": "scale_error", "factor": 2}, dict(value=364.8, tolerance=0.051)),
    ({"kind": "saturate", "max": 150}, dict(value=150)),
    ({"kind": "out_of_range", "value": 6000}, dict(value=6000)),
    ({"kind": "drift", "rate": 50}, dict(value=None, above=200)),
    ({"kind": "spike", "magnitude": 400, "every": 0.5, "width": 0.3}, dict(value=582.4, tolerance=0.051)),
    ({"kind": "noise", "sigma": 20}, dict(value=None, moved=True)),
]


@pytest.mark.parametrize("fault,want", DATA, ids=[f["kind"] for f, _ in DATA])
async def test_data_fault_value_on_mqtt(lab: Lab, fault: dict, want: dict) -> None:
    t0 = time.time()
    a = await lab.inject(IA, fault)
    if want.get("value") is not None:
        s = await lab.wait_for(IA, value=want["value"], tolerance=want.get("tolerance", 1e-3), timeout=4, since=t0)
    else:
        async def moved():
            while True:
                xs = [x.value for x in lab.samples(IA, since=t0)]
                if want.get("above") is not None and any(v > want["above"] for v in xs):
                    return
                if want.get("moved") and len({round(v, 1) for v in xs if abs(v - 182.4) > 0.15}) >= 3:
                    return
                await asyncio.sleep(0.05)
        await asyncio.wait_for(moved(), 5)
        s = lab.samples(IA, since=t0)[-1]
    assert s.quality.get("validity") == "GOOD"  # Modbus registers carry no quality: the value is the symptom
    await lab.injector.clear(a.id)
    await lab.wait_for(IA, value=182.4, tolerance=1e-3, timeout=4, since=time.time())


async def test_oscillation_and_set_state_on_a_breaker(lab: Lab) -> None:
    t0 = time.time()
    a = await lab.inject("meter1/CB", {"kind": "oscillation", "period": 0.6, "states": [1, 2]})
    await lab.wait_for("meter1/CB", value=1, timeout=3, since=t0)
    t1 = time.time()
    await lab.wait_for("meter1/CB", value=2, timeout=3, since=t1)
    await lab.wait_for("meter1/CB", value=1, timeout=3, since=time.time())
    await lab.injector.clear(a.id)
    await lab.wait_for("meter1/CB", value=2, timeout=3, since=time.time())  # back to the real state: closed
    t2 = time.time()
    b = await lab.inject("meter1/CB", {"kind": "set_state", "value": 1})
    await lab.wait_for("meter1/CB", value=1, timeout=3, since=t2)
    await asyncio.sleep(0.5)
    assert [s.value for s in lab.samples("meter1/CB", since=time.time() - 0.4)] in ([], [1])
    await lab.injector.clear(b.id)  # clearing the event puts the breaker back
    await lab.wait_for("meter1/CB", value=2, timeout=3, since=time.time())


async def test_unknown_target_and_unsupported_kind_are_refused(lab: Lab) -> None:
    with pytest.raises(ValueError, match="no point 'Ixx' on device 'meter1'"):
        await lab.inject("meter1/Ixx", {"kind": "stuck"})
    with pytest.raises(ValueError, match="'iin' does not apply to modbus device meter1"):
        await lab.inject("meter1", {"kind": "iin", "bits": ["NEED_TIME"]})
    assert lab.injector.list() == []
