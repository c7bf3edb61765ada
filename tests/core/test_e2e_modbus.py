"""Walking skeleton end to end: emulated Modbus meter → gateway → real Mosquitto → subscriber."""

from __future__ import annotations

import asyncio
import struct
import time
from datetime import datetime

import pytest

from devices.emulator import Emulator
from gateway.app import Gateway, GatewayOptions
from tests.support.mqtt import Collector
from tests.support.sites import modbus_site

PREFIX = "gridgate/v1/gw-test"
POLL = 0.5


def f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


def ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


EXPECTED = {  # topic suffix → value as the meter's registers encode it
    "INC1/CB/ThreePhaseActivePower/ABC": f32(4321.5 / 1000) * 1000,
    "INC1/CB/ThreePhaseReactivePower/ABC": f32(-812.25),
    "INC1/CB/LineCurrent/A": 182.4,
    "INC1/CB/Voltage/AB": 11012.34,
    "INC1/CB/Angle/A": -17.5,
    "INC1/CB/Frequency": 49.987,
    "INC1/CB/SwitchPosition": 2,
}


def latest_values(sub: Collector) -> dict[str, dict]:
    out = {}
    for m in sub.on("/meas/"):
        out[m.topic.split("/meas/SUB/")[1]] = m.json
    return out


async def test_modbus_meter_to_mqtt(tmp_path, mosquitto):
    cfg, _ = modbus_site(tmp_path, poll=f"{int(POLL * 1000)}ms", timeout="400ms")
    async with Collector(mosquitto.port, [f"{PREFIX}/#"]) as sub:
        emu = Emulator(cfg)
        await emu.start()
        gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=1.0))
        t_start = time.time()
        await gw.start()
        try:
            # catalog: one retained Measurement per point
            cats = await sub.wait_for(lambda: len(sub.on("/catalog/")) >= 7 and sub.on("/catalog/"), 5, "catalog")
            kinds = sorted(m.json["kind"] for m in cats)
            assert kinds == ["Analog"] * 6 + ["Discrete"]
            for m in cats:
                assert m.topic.endswith(m.json["mRID"])
                assert m.json["powerSystemResource"]["substation"] == "SUB"

            # values: typed, scaled, word orders decoded, GOOD, source time within the run
            vals = await sub.wait_for(lambda: len(latest_values(sub)) == 7 and latest_values(sub), 5, "7 values")
            for suffix, expected in EXPECTED.items():
                v = vals[suffix]
                assert v["value"] == pytest.approx(expected, rel=1e-6, abs=1e-6), suffix
                assert v["quality"] == {"validity": "GOOD", "source": "PROCESS"}
                assert t_start - 0.1 <= ts(v["timeStamp"]) <= time.time() + 0.1
                assert v["provenance"]["device"] == "meter1" and v["provenance"]["protocol"] == "modbus"
            assert vals["INC1/CB/SwitchPosition"]["valueAlias"] == "closed"
            assert vals["INC1/CB/LineCurrent/A"]["provenance"]["address"] == "holding:10"
            assert vals["INC1/CB/ThreePhaseActivePower/ABC"]["measurement"]["unitMultiplier"] == "k"
            seqs = [m.json["seq"] for m in sub.on("/meas/")]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

            # constant values are not republished every poll (report-by-exception)
            n_before = len(sub.on("/meas/"))
            await asyncio.sleep(POLL * 4)
            assert len(sub.on("/meas/")) == n_before
            assert gw.normaliser.stats.suppressed >= 7 * 2

            status = sub.latest("/status")
            assert status["state"] == "online" and status["devices"]["meter1"]["connected"] is True
            assert status["devices"]["meter1"]["counters"]["requests"] >= 3  # coalesced: 3 blocks (holding, input, bits)

            # the breaker trips in the simulated firmware: the discrete input follows (open = 1)
            emu.apply_command("meter1", "CB", 1)
            opened = await sub.wait_for(
                lambda: (latest_values(sub)["INC1/CB/SwitchPosition"]["value"] == 1) and latest_values(sub), 3, "CB open"
            )
            assert opened["INC1/CB/SwitchPosition"]["valueAlias"] == "open"
            emu.apply_command("meter1", "CB", 2)
            await sub.wait_for(lambda: latest_values(sub)["INC1/CB/SwitchPosition"]["value"] == 2, 3, "CB closed")

            # device stops answering → every measurement INVALID + failure + oldData, last value kept
            t_stop = time.time()
            await emu.stop_device("meter1")

            def all_invalid():
                v = latest_values(sub)
                return all(x["quality"].get("validity") == "INVALID" for x in v.values()) and v

            bad = await sub.wait_for(all_invalid, 2 * POLL + 1.0, "INVALID after device stop")
            t_invalid = max(m.at for m in sub.on("/meas/"))
            assert t_invalid - t_stop <= 2 * POLL, f"INVALID after {t_invalid - t_stop:.2f} s, want <= 2 poll periods"
            for suffix, expected in EXPECTED.items():
                q = bad[suffix]["quality"]
                assert q["failure"] is True and q["oldData"] is True
                assert bad[suffix]["value"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
            await sub.wait_for(lambda: sub.latest("/status")["devices"]["meter1"]["connected"] is False, 3, "status down")

            # device back → GOOD again
            await emu.start_device("meter1")

            def all_good():
                v = latest_values(sub)
                return all(x["quality"] == {"validity": "GOOD", "source": "PROCESS"} for x in v.values())

            await sub.wait_for(all_good, 5, "GOOD after restart")
        finally:
            await gw.stop()
            await emu.stop()
        await sub.wait_for(lambda: sub.latest("/status")["state"] == "offline", 3, "offline status")
        assert sub.latest("/status")["reason"] == "shutdown"

    # a late subscriber gets the retained state: offline status, catalog and last values
    async with Collector(mosquitto.port, [f"{PREFIX}/#"]) as late:
        await late.wait_for(lambda: late.latest("/status") and len(late.on("/catalog/")) == 7, 3, "retained")
        assert late.latest("/status")["state"] == "offline"
        assert all(m.retain for m in late.messages)
        assert len(latest_values(late)) == 7


async def test_gateway_will_marks_offline_on_broken_connection(tmp_path, mosquitto):
    """The MQTT last will publishes `offline` when the gateway vanishes without a clean exit."""
    import subprocess
    import sys

    cfg, path = modbus_site(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "gateway", "--config", str(path), "--broker", mosquitto.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        async with Collector(mosquitto.port, [f"{PREFIX}/status"]) as sub:
            await sub.wait_for(lambda: (sub.latest("/status") or {}).get("state") == "online", 10, "online")
            proc.kill()
            proc.wait(5)
            await sub.wait_for(lambda: sub.latest("/status")["state"] == "offline", 60, "will message")
            assert sub.latest("/status")["reason"] == "connection lost"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
