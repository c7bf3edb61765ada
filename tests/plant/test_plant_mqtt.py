"""The example site on its plant model, end to end: emulated devices (Modbus meters, DNP3 RTU,
IEC 61850 IEDs on real sockets) → gateway → real Mosquitto → an independent raw-socket MQTT client.

Kirchhoff holds on the published values, and a breaker opened through the control-room command
path de-energises its feeder and unloads the incomers; closing it restores both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest

from gateway.config import Config, load_config
from tests.commands.site import Room, request
from tests.support.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
GW = "kgm-gw1"
MEAS = f"gridgate/v1/{GW}/meas/#"
CMD = f"gridgate/v1/{GW}/cmd"
FEEDERS = [f"KGM/F{k}/FDR/ThreePhaseActivePower/ABC" for k in range(1, 7)]
INCOMERS = ["KGM/INC1/CB/ThreePhaseActivePower/ABC", "KGM/INC2/CB/ThreePhaseActivePower/ABC"]
TRANSFORMERS = ["KGM/T1/TX/ThreePhaseActivePower/ABC", "KGM/T2/TX/ThreePhaseActivePower/ABC"]
F1_IA = "KGM/F1/FDR/LineCurrent/A"
F1_POS = "KGM/F1/CB/SwitchPosition"


def example_site() -> Config:
    """The shipped example on free loopback ports, polled every second, commands on."""
    data = load_config(ROOT / "configs" / "primary-substation.yaml").model_dump(mode="json", by_alias=True)
    data["gateway"]["northbound"]["commands"] = True
    used: set[int] = set()
    for d in data["devices"]:
        while (port := free_port()) in used:  # free_port does not hold the port: no two devices on one
            pass
        used.add(port)
        d["port"] = port
        d["poll_interval"] = 1.0
        if d["protocol"] == "dnp3":
            d["dnp3"]["event_poll_interval"] = 1.0
    return Config.model_validate(data)


def latest(room: Room, topic_end: str) -> float | None:
    ms = room.measurement(topic_end)
    return ms[-1]["value"] if ms else None


def total(room: Room, topics: list[str]) -> float | None:
    vals = [latest(room, t) for t in topics]
    return None if any(v is None for v in vals) else sum(vals)


async def command(room: Room, mrid: str, id_: str, value: int) -> dict:
    """Publish one control-room command to the example gateway and return its result."""
    topic = f"{CMD}/{mrid}/result"
    n = len(room.messages)
    room.publish(f"{CMD}/{mrid}", request(id_, value, operator="control-engineer"))

    def result() -> dict | None:
        for m in room.messages[n:]:
            if m.topic == topic and json.loads(m.payload).get("id") == id_:
                return json.loads(m.payload)
        return None

    return await until(result, 15, f"the result of command {id_}")


async def until(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.asynccontextmanager
async def running(cfg: Config, broker, sim_time=None):
    """Emulated devices + gateway on the broker + a control-room client; yields (emulator, room)."""
    from devices.emulator import Emulator
    from gateway.app import Gateway, GatewayOptions
    from gateway.pipeline import Backoff

    async with Emulator(cfg, tick=0.1, sim_time=sim_time) as emu, \
            Room(broker.port, [MEAS, f"{CMD}/+/result"], client_id="room") as room:
        assert not emu.skipped, emu.skipped
        gw = Gateway(cfg, GatewayOptions(broker=broker.url, status_interval=60.0, inbound=True))
        for s in gw.sources:
            s.backoff = Backoff(initial=0.05, maximum=0.5)
        await gw.start()
        try:
            everything = FEEDERS + INCOMERS + TRANSFORMERS + [F1_IA, F1_POS]
            await until(lambda: all(latest(room, t) is not None for t in everything), 40, "every P on MQTT")
            yield emu, room
        finally:
            await gw.stop(timeout=5)


def kirchhoff(room: Room) -> float:
    """Σ feeders, after asserting incomers and transformers carry it (within 3 %, transformers + losses)."""
    feeders, inc, tx = total(room, FEEDERS), total(room, INCOMERS), total(room, TRANSFORMERS)
    assert feeders > 1000  # kW: six feeders of a GB primary at any time of day
    assert abs(inc - feeders) / feeders < 0.03, (inc, feeders)
    assert abs(tx - feeders) / feeders < 0.03, (tx, feeders)
    # (transformers carry the incomers plus their losses, ~0.5 %; the RTU's 50 kW deadbands hide that here)
    return feeders


async def test_kirchhoff_across_a_simulated_day_on_mqtt(mosquitto):
    """The firmware clock steps through a day (4 plateaus of 8 s); every plateau balances."""
    day0 = time.time() // 86400 * 86400
    hours = (3, 9, 13, 19)
    plateau = 80  # ticks of 0.1 s
    async with running(example_site(), mosquitto,
                       sim_time=lambda k: day0 + 3600 * hours[min(k // plateau, len(hours) - 1)]) as (emu, room):
        seen = []
        for p in range(len(hours)):
            start = emu.t0_wall + p * plateau * 0.1
            await asyncio.sleep(max(0.0, start + 6.0 - time.time()))  # polls and reports settle in the plateau
            seen.append(kirchhoff(room))
        assert max(seen) > 1.3 * min(seen), seen  # the day shape moved the load
        assert seen[0] == min(seen)  # 03:00 is the night trough


async def test_example_site_kirchhoff_and_breaker_consequences_on_mqtt(mosquitto):
    cfg = example_site()
    f1 = next(d for d in cfg.devices if d.name == "ied-f1")
    cb_mrid = str(cfg.measurement_mrid(next(p for p in f1.points if p.name == "CB")))
    async with running(cfg, mosquitto) as (emu, room):
        # Kirchhoff on the published values, sampled over 15 s of polls and reports
        for _ in range(15):
            kirchhoff(room)
            await asyncio.sleep(1.0)
        # the same breaker seen by the RTU (DNP3) and the incomer meter (Modbus) agrees
        assert latest(room, "KGM/INC1/CB/SwitchPosition/ABC") == latest(room, "KGM/INC1/CB/SwitchPosition") == 2
        assert latest(room, "KGM/BS/CB/SwitchPosition") == 2  # normally closed, as the header says

        # open F1 through the control-room command path
        f1_p = latest(room, FEEDERS[0])
        f1_ia = latest(room, F1_IA)
        inc_before = total(room, INCOMERS)
        assert f1_p > 200 and f1_ia > 10
        res = await command(room, cb_mrid, "open-f1", 1)
        assert res["status"] == "done", res
        await until(lambda: latest(room, F1_POS) == 1, 10, "F1 breaker open on MQTT")
        await until(lambda: latest(room, F1_IA) == 0 and latest(room, FEEDERS[0]) == 0, 10, "F1 current and P at 0")
        assert latest(room, "KGM/F1/FDR/LineCurrent/B") == 0 and latest(room, "KGM/F1/FDR/PhaseVoltage/AN") == 0
        await until(lambda: abs(inc_before - total(room, INCOMERS) - f1_p) < 150 + 0.1 * f1_p, 15,
                    f"incomers falling by F1's {f1_p:.0f} kW from {inc_before:.0f} kW")
        feeders, inc = total(room, FEEDERS), total(room, INCOMERS)
        assert abs(inc - feeders) / feeders < 0.03

        # close it again: restored
        res = await command(room, cb_mrid, "close-f1", 2)
        assert res["status"] == "done", res
        await until(lambda: latest(room, F1_POS) == 2, 10, "F1 breaker closed on MQTT")
        await until(lambda: (latest(room, F1_IA) or 0) > 0.8 * f1_ia, 10, "F1 current back")
        await until(lambda: abs(total(room, INCOMERS) - inc_before) < 150 + 0.1 * f1_p, 15,
                    f"incomers back at {inc_before:.0f} kW")


async def test_avc_tap_steps_move_the_bus_voltage_on_mqtt(mosquitto):
    """Night load leaves the 11 kV bus above the AVC band; the firmware clock runs 20x so the
    60 s AVC delay passes in 3 s: both tap changers step down together and the bus voltage
    published by the RTU falls by one step (1.25 %), back into the band."""
    day0 = time.time() // 86400 * 86400
    speed = 20.0
    tap_topic, bus_topic = "KGM/T1/TX/TapPosition", "KGM/BS/BB1/Voltage/AB"
    async with running(example_site(), mosquitto,
                       sim_time=lambda k: day0 + 3 * 3600 + k * 0.1 * speed) as (emu, room):
        first_tap = latest(room, tap_topic)
        assert first_tap == 9 and latest(room, bus_topic) > 11.1 * 1.015  # above the band at 03:00
        await until(lambda: (latest(room, tap_topic) or 99) <= first_tap - 1, 60, "an AVC tap step down")
        taps = [(m["value"], m["timeStamp"]) for m in room.measurement(tap_topic)]
        buses = [(m["value"], m["timeStamp"]) for m in room.measurement(bus_topic)]
        # the bus voltage just before and just after the first step
        step_at = next(ts for v, ts in taps if v == first_tap - 1)
        before = [v for v, ts in buses if ts < step_at][-1]
        await until(lambda: any(m["timeStamp"] >= step_at for m in room.measurement(bus_topic)), 10, "bus after")
        after = next(m["value"] for m in room.measurement(bus_topic) if m["timeStamp"] >= step_at)  # the same tick
        assert after / before - 1 == pytest.approx(-0.0125, abs=0.004), (before, after)
        await until(lambda: abs(latest(room, bus_topic) - 11.1) <= 11.1 * 0.015, 10, "the bus back in band")
        assert latest(room, "KGM/T2/TX/TapPosition") == first_tap - 1  # the parallel transformer stepped too
