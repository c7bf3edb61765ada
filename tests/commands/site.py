"""The command test site: one Modbus meter/RTU, one DNP3 RTU and one IEC 61850 feeder IED, emulated
in process (commands land in the firmware), and a gateway in front of them on a private Mosquitto.

Two views of the same site: ``site(gateway=False)`` is what the emulated devices are built from;
``site(gateway=True)`` is the gateway's config, which on purpose disagrees on a few points to
provoke device-side refusals the gateway cannot predict:

* DNP3 ``CB9`` exists only on the gateway side → the outstation answers the SELECT NOT_SUPPORTED;
* IEC 61850 ``Pos2`` is SBO-enhanced on the IED, direct on the gateway → operate without select
  is refused with AddCause Object-not-selected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from gateway.config import Config
from gateway.northbound.commands import CommandRouter
from gateway.pipeline import Backoff
from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import free_port

GW = "gw-cmd"
CMD = f"gridgate/v1/{GW}/cmd"
OPS = ["alice", "control-engineer"]
CLOSED, OPEN = 2, 1


def _cmd(mode: str = "direct", operators: list[str] | None = None, ttl: float = 5.0) -> dict:
    return {"enabled": True, "mode": mode, "operators": OPS if operators is None else operators, "ttl": ttl}


def modbus_points() -> list[dict]:
    eq = "S1/T1/CB"
    return [
        {"name": "CB", "table": "coil", "address": 0, "type": "bool", "value_map": {0: 1, 1: 2},
         "measurement": {"equipment": eq, "type": "SwitchPosition"}, "signal": {"kind": "discrete", "initial": 1},
         "command": _cmd()},
        {"name": "TAP", "table": "holding", "address": 0, "type": "int16",
         "measurement": {"equipment": "S1/T1/TX", "type": "TapPosition"},
         "signal": {"kind": "discrete", "initial": 9, "min": 1, "max": 17}, "command": _cmd()},
        {"name": "VSET", "table": "holding", "address": 10, "type": "float32", "word_order": "little", "scale": 0.001,
         "measurement": {"equipment": "S1/T2/TX", "type": "Voltage"},
         "signal": {"kind": "constant", "value": 11.0}, "command": _cmd()},
        {"name": "F", "table": "holding", "address": 20, "type": "uint16", "scale": 0.01,
         "measurement": {"equipment": "S1/T1/TX", "type": "Frequency"},
         "signal": {"kind": "sine", "mean": 50.0, "amplitude": 0.05, "period": 60}, "command": _cmd()},
        {"name": "V", "table": "input", "address": 0, "type": "uint16", "scale": 0.01,
         "measurement": {"equipment": "S1/T1/TX", "type": "Voltage"}, "signal": {"kind": "constant", "value": 11.0},
         "command": _cmd()},
        {"name": "CB2", "table": "coil", "address": 1, "type": "bool", "value_map": {0: 1, 1: 2},
         "measurement": {"equipment": "S1/T2/CB", "type": "SwitchPosition"}, "signal": {"kind": "discrete", "initial": 1},
         "command": _cmd("sbo")},
        {"name": "TAP2", "table": "holding", "address": 1, "type": "int16",
         "measurement": {"equipment": "S1/T2/TX", "type": "TapPosition"},
         "signal": {"kind": "discrete", "initial": 5, "min": 1, "max": 17}},
    ]


def dnp3_points(gateway: bool) -> list[dict]:
    pts = [
        {"name": "CB", "group": "double_binary", "index": 0, "measurement": {"equipment": "S1/F2/CB", "type": "SwitchPosition"},
         "signal": {"kind": "discrete", "initial": 1}, "command": _cmd("sbo")},
        {"name": "P", "group": "analog", "index": 0, "measurement": {"equipment": "S1/F2/CB", "type": "ThreePhaseActivePower"},
         "signal": {"kind": "constant", "value": 1500.0}},
    ]
    if gateway:
        pts.append({"name": "CB9", "group": "double_binary", "index": 9,
                    "measurement": {"equipment": "S1/F2/CB9", "type": "SwitchPosition"}, "command": _cmd("sbo")})
    return pts


def iec_points(gateway: bool) -> list[dict]:
    eq = "S1/F1/CB1"
    return [
        {"name": "P", "reference": "F1PROT/MMXU1.TotW.mag.f", "measurement": {"equipment": eq, "type": "ThreePhaseActivePower"},
         "signal": {"kind": "constant", "value": 2500.0}},
        {"name": "Pos", "reference": "F1PROT/XCBR1.Pos.stVal", "fc": "ST", "measurement": {"equipment": eq, "type": "SwitchPosition"},
         "signal": {"kind": "discrete", "initial": 1}, "command": _cmd("sbo")},
        {"name": "Pos2", "reference": "F1PROT/XCBR2.Pos.stVal", "fc": "ST",
         "measurement": {"equipment": "S1/F1/CB2", "type": "SwitchPosition"},
         "signal": {"kind": "discrete", "initial": 1}, "command": _cmd("direct" if gateway else "sbo")},
    ]


def site(ports: dict[str, int], gateway: bool = True, commands: bool = True) -> Config:
    bay = lambda name, *eq: {"name": name, "equipment": [{"name": n, "type": t} for n, t in eq]}  # noqa: E731
    return Config.model_validate({
        "site": {"name": "CMD"},
        "gateway": {"id": GW, "northbound": {"commands": commands}},
        "substations": [{"name": "S1", "bays": [
            bay("T1", ("CB", "Breaker"), ("TX", "PowerTransformer")),
            bay("T2", ("CB", "Breaker"), ("TX", "PowerTransformer")),
            bay("F1", ("CB1", "Breaker"), ("CB2", "Breaker")),
            bay("F2", ("CB", "Breaker"), ("CB9", "Breaker")),
        ]}],
        "devices": [
            {"name": "mb1", "kind": "rtu", "protocol": "modbus", "port": ports["mb1"], "poll_interval": 2.0, "timeout": 0.5,
             "points": modbus_points()},
            {"name": "rtu1", "kind": "rtu", "protocol": "dnp3", "port": ports["rtu1"], "poll_interval": 0.5, "timeout": 1.0,
             "dnp3": {"event_poll_interval": 0.5}, "points": dnp3_points(gateway)},
            {"name": "F1", "kind": "ied", "protocol": "iec61850", "port": ports["F1"], "poll_interval": 0.5, "timeout": 1.0,
             "points": iec_points(gateway)},
        ],
    })


def free_ports() -> dict[str, int]:
    return {"mb1": free_port(), "rtu1": free_port(), "F1": free_port()}


def mrid(cfg: Config, device: str, point: str) -> str:
    d = next(x for x in cfg.devices if x.name == device)
    return str(cfg.measurement_mrid(next(p for p in d.points if p.name == point)))


def request(id_: str, value: Any, operator: str = "alice", issued: float | str | None = None) -> bytes:
    return json.dumps({"id": id_, "value": value, "operator": operator,
                       "issued": time.time() if issued is None else issued}).encode()


def router_of(gw: Any) -> CommandRouter | None:
    """The gateway's own command router (gateway/app.py builds it only with ``northbound.commands``
    on and an inbound network profile)."""
    r = getattr(gw, "commands", None)
    return r if isinstance(r, CommandRouter) else None


@dataclass
class Lab:
    emu: Any
    gw: Any
    gw_cfg: Config
    broker_port: int

    def state(self, device: str, point: str) -> float:
        """The emulated firmware's current value of a point (the device's truth)."""
        return self.emu.fw.value(self.emu.fw.index(device, point))

    def mrid(self, device: str, point: str) -> str:
        return mrid(self.gw_cfg, device, point)

    def gw_router(self) -> CommandRouter | None:
        return router_of(self.gw)

    def source(self, device: str) -> Any:
        return next(s for s in self.gw.sources if s.device == device)


@contextlib.asynccontextmanager
async def lab(broker_url: str, broker_port: int, inbound: bool = True, commands: bool = True) -> AsyncIterator[Lab]:
    from devices.emulator import Emulator
    from gateway.app import Gateway, GatewayOptions

    ports = free_ports()
    emu_cfg, gw_cfg = site(ports, gateway=False), site(ports, gateway=True, commands=commands)
    async with Emulator(emu_cfg, tick=0.05) as emu:
        gw = Gateway(gw_cfg, GatewayOptions(broker=broker_url, status_interval=60.0, inbound=inbound))
        for s in gw.sources:
            s.backoff = Backoff(initial=0.05, maximum=0.5)
        await gw.start()
        try:
            L = Lab(emu, gw, gw_cfg, broker_port)
            end = time.monotonic() + 15
            while not all(s.connected for s in gw.sources):
                if time.monotonic() > end:
                    raise AssertionError(f"devices not connected: {gw.device_states()}")
                await asyncio.sleep(0.05)
            yield L
        finally:
            await gw.stop(timeout=5)


class Room(RawSubscriber):
    """The control room: an independent raw-socket MQTT client that sends commands and reads results."""

    async def send(self, mrid_: str, payload: bytes, timeout: float = 8.0) -> dict:
        """Publish one command and wait for its result (matched by topic and request id)."""
        try:
            want = json.loads(payload).get("id")
        except (ValueError, AttributeError):
            want = None
        n = len(self.messages)
        self.publish(f"{CMD}/{mrid_}", payload)
        topic = f"{CMD}/{mrid_}/result"
        ok = await self.wait_for(lambda ms: any(m.topic == topic and json.loads(m.payload).get("id") == want for m in ms[n:]),
                                 timeout)
        assert ok, f"no result for {want!r} on {topic} within {timeout}s; got {[m.payload for m in self.messages[n:]]}"
        return next(json.loads(m.payload) for m in self.messages[n:] if m.topic == topic and json.loads(m.payload).get("id") == want)

    def measurement(self, topic_part: str) -> list[dict]:
        return [json.loads(m.payload) for m in self.messages if "/meas/" in m.topic and m.topic.endswith(topic_part)]
