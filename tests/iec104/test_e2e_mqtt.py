"""configs/iec104-rtu.yaml end to end: the emulated 104 RTU fed by the firmware → the gateway's
controlling station → real Mosquitto → an independent raw-socket subscriber (the control room).
Values, quality and source times on MQTT equal what the RTU holds; GI after a reconnect; commands
round trip from cmd/{mRID} to the firmware and back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from devices.emulator import Emulator
from devices.scenario.ports import with_free_ports
from gateway.app import Gateway, GatewayOptions
from gateway.config import Config, load_config
from gateway.pipeline import Backoff
from gateway.site.quality import Q, from_cim
from tests.northbound.rawsub import RawSubscriber

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "iec104-rtu.yaml"
DEV = "rtu-ash"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Site:
    def __init__(self, cfg: Config, emu: Emulator, gw: Gateway, room: RawSubscriber) -> None:
        self.cfg, self.emu, self.gw, self.room = cfg, emu, gw, room
        self.prefix = f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}"
        self.points = {p.name: p for p in cfg.devices[0].points}

    @property
    def rtu(self) -> Any:
        return self.emu.devices[DEV].server

    @property
    def src(self) -> Any:
        return self.gw.sources[0]

    def topic(self, point: str) -> str:
        m = self.points[point].measurement
        t = f"{self.prefix}/meas/{m.equipment}/{m.type}"
        return t if m.phases == "none" else f"{t}/{m.phases}"

    def published(self, point: str) -> list[dict]:
        t = self.topic(point)
        return [json.loads(m.payload) for m in self.room.messages if m.topic == t]

    async def latest_where(self, point: str, pred, timeout: float = 15.0, what: str = "") -> dict:
        def hit(_ms) -> bool:
            ms = self.published(point)
            return bool(ms) and bool(pred(ms[-1]))

        assert await self.room.wait_for(hit, timeout), f"{what or point}: last published {self.published(point)[-2:]}"
        return self.published(point)[-1]

    async def any_where(self, point: str, pred, timeout: float = 15.0, what: str = "") -> dict:
        """The first published message of ``point`` satisfying ``pred`` (the firmware may move on after it)."""
        assert await self.room.wait_for(lambda _ms: any(pred(m) for m in self.published(point)), timeout), \
            f"{what or point}: last published {self.published(point)[-2:]}"
        return next(m for m in self.published(point) if pred(m))

    def state(self, point: str) -> float:
        return self.emu.fw.value(self.emu.fw.index(DEV, point))

    async def command(self, point: str, value: Any, id_: str, timeout: float = 10.0) -> dict:
        mrid = str(self.cfg.measurement_mrid(self.points[point]))
        topic = f"{self.prefix}/cmd/{mrid}"
        n = len(self.room.messages)
        self.room.publish(topic, json.dumps({"id": id_, "value": value, "operator": "control-engineer",
                                             "issued": time.time()}).encode())

        def answered(ms) -> bool:
            return any(m.topic == topic + "/result" and json.loads(m.payload).get("id") == id_ for m in ms[n:])

        assert await self.room.wait_for(answered, timeout), f"no result for {id_}"
        return next(json.loads(m.payload) for m in self.room.messages[n:]
                    if m.topic == topic + "/result" and json.loads(m.payload).get("id") == id_)


@contextlib.asynccontextmanager
async def site(mosquitto) -> AsyncIterator[Site]:
    cfg = with_free_ports(load_config(CONFIG))
    prefix = f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}"
    async with Emulator(cfg, tick=0.1) as emu, RawSubscriber(mosquitto.port, [f"{prefix}/meas/#", f"{prefix}/cmd/+/result",
                                                                             f"{prefix}/status"], client_id="room") as room:
        gw = Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=1.0, inbound=True))
        for s in gw.sources:
            s.backoff = Backoff(initial=0.1, maximum=0.5)
        await gw.start()
        try:
            s = Site(cfg, emu, gw, room)
            deadline = time.monotonic() + 20
            while not (s.src.connected and s.src.status_counters()["general_interrogations"] >= 1):
                assert time.monotonic() < deadline, f"104 RTU not up: {gw.device_states()}"
                await asyncio.sleep(0.05)
            yield s
        finally:
            await gw.stop(timeout=5)


async def test_every_point_on_mqtt_equals_what_the_rtu_holds(mosquitto):
    async with site(mosquitto) as s:
        # the discretes do not move by themselves: after the GI each is on MQTT exactly as the RTU holds it
        for name in ("GT1_TAP", "GT2_TAP", "GT1_HVCB", "GT1_LVCB", "GT2_HVCB", "GT2_LVCB", "GT1_TRIP", "GT2_TRIP", "AVC_TARGET"):
            m = await s.latest_where(name, lambda m, n=name: m["value"] == s.rtu.value(n), what=name)
            assert m["quality"] == {"validity": "GOOD", "source": "PROCESS"}
            assert m["provenance"] == {"device": DEV, "protocol": "iec104", "address": f"ioa:{s.points[name].ioa}"}
        assert s.published("GT1_HVCB")[-1]["valueAlias"] == "closed"
        # every analog and counter is published (GI / counter interrogation / spontaneous)
        for name in ("GT1_P", "GT1_Q", "GT2_P", "GT2_Q", "BB1_V", "BB2_V", "FREQ", "GT1_IMPORT_KWH", "GT2_IMPORT_KWH"):
            await s.latest_where(name, lambda m: m["value"] is not None, what=name)
        # a value with quality and a source time set at the RTU arrives unchanged (CP56Time2a, QDS IV|SB)
        ts = round(time.time() - 30, 3)
        s.rtu.update("GT1_P", 61234.5, int(Q.INVALID | Q.SUBSTITUTED), ts)
        m = await s.any_where("GT1_P", lambda m: abs(_epoch(m["timeStamp"]) - ts) < 0.0015, what="GT1_P from the RTU")
        assert m["value"] == pytest.approx(61234.5)
        assert from_cim(m["quality"]) == int(Q.INVALID | Q.SUBSTITUTED)
        # the scaled busbar voltage: 33.41 kV → raw 3341 → 33.41 on MQTT, NT → QUESTIONABLE + oldData
        s.rtu.update("BB1_V", 33.41, int(Q.QUESTIONABLE | Q.OLD_DATA), ts + 1)
        m = await s.any_where("BB1_V", lambda m: m["quality"].get("oldData"), what="BB1_V NT")
        assert m["value"] == pytest.approx(33.41) and m["quality"] == {"validity": "QUESTIONABLE", "source": "PROCESS", "oldData": True}
        assert await s.room.wait_for(lambda _ms: s.src.status_counters()["clock_syncs"] >= 1, 10)  # GI, CI, then CS
        c = s.src.status_counters()
        assert c["general_interrogations"] >= 1 and c["counter_interrogations"] >= 1 and c["clock_syncs"] >= 1
        assert c["spontaneous"] >= 1 and c["malformed"] == {} and c["callback_errors"] == 0


async def test_commands_round_trip_through_mqtt_to_the_firmware_and_back(mosquitto):
    async with site(mosquitto) as s:
        await s.latest_where("GT1_HVCB", lambda m: m["value"] == 2)
        res = await s.command("GT1_HVCB", 1, "open-gt1-hv")
        assert (res["status"], res["reason"]) == ("done", None), res
        assert res["detail"]["command_type"] == "C_DC_NA_1" and res["detail"]["mode"] == "sbo" and res["detail"]["terminated"]
        await s.latest_where("GT1_HVCB", lambda m: m["value"] == 1, what="GT1_HVCB open on MQTT")
        assert s.state("GT1_HVCB") == 1
        await s.latest_where("GT1_TAP", lambda m: m["value"] == 10)
        res = await s.command("GT1_TAP", 11, "raise-gt1")
        assert res["status"] == "done" and res["detail"]["command_type"] == "C_RC_NA_1", res
        await s.latest_where("GT1_TAP", lambda m: m["value"] == 11, what="GT1_TAP raised")
        assert s.state("GT1_TAP") == 11
        res = await s.command("AVC_TARGET", 33000.0, "avc")
        assert res["status"] == "done" and res["detail"]["command_type"] == "C_SE_NC_1", res
        await s.latest_where("AVC_TARGET", lambda m: m["value"] == 33000.0, what="AVC target")
        assert s.state("AVC_TARGET") == 33000
        # refused at the RTU (control_refused fault): a direct setpoint gets a negative confirmation
        from devices.iec104.emulated import apply_faults
        from devices.scenario.faults import ControlRefused

        apply_faults(s.rtu, [ControlRefused(kind="control_refused", add_cause=0)])
        res = await s.command("AVC_TARGET", 34000.0, "avc-refused")
        assert (res["status"], res["reason"]) == ("failed", "device_refused"), res
        assert res["detail"]["negative"] is True and res["detail"]["cot"] == 7
        assert s.state("AVC_TARGET") == 33000
        res = await s.command("GT1_LVCB", 1, "open-gt1-lv-refused")  # select-before-execute: refused at the execute
        assert (res["status"], res["reason"]) == ("failed", "device_refused"), res
        assert res["detail"]["negative"] is True and res["detail"]["mode"] == "sbo"
        assert s.state("GT1_LVCB") == 2


async def test_rtu_loss_is_invalid_on_mqtt_and_the_gi_after_reconnect_restores_it(mosquitto):
    async with site(mosquitto) as s:
        await s.latest_where("GT2_TAP", lambda m: m["value"] == 10 and m["quality"]["validity"] == "GOOD")
        await s.emu.stop_device(DEV)
        lost = await s.latest_where("GT2_TAP", lambda m: m["quality"]["validity"] == "INVALID", what="GT2_TAP lost")
        assert lost["value"] == 10 and lost["quality"].get("failure") and lost["quality"].get("oldData")
        gis = s.src.status_counters()["general_interrogations"]
        s.emu.fw.set_state(s.emu.fw.index(DEV, "GT2_TAP"), 12)  # changes while the link is down
        await s.emu.start_device(DEV)
        back = await s.latest_where("GT2_TAP", lambda m: m["quality"]["validity"] == "GOOD", 30, "GT2_TAP after reconnect")
        assert back["value"] == 12
        assert await s.room.wait_for(lambda _ms: s.src.status_counters()["general_interrogations"] > gis, 10)  # counted after its values
        assert s.src.state.reconnects >= 1
