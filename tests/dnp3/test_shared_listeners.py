"""Two DNP3 outstations on 127.0.0.2 and 127.0.0.3, one port, one listening socket (devices/sharedlisten.py):
the project's DNP3 master polls each at its own address (and link address) and gets that outstation's values, and a ``disconnect`` fault (the outstation stops and
restarts) takes only its own address away."""

from __future__ import annotations

import socket

from devices.emulator import Emulator
from devices.scenario.inject import Injector
from gateway.config import Config
from gateway.runtime import free_port
from tests.dnp3.conftest import source
from tests.modbus.test_shared_listeners import closed_at_once, listening_sockets

HOSTS = ["127.0.0.2", "127.0.0.3"]


def site(port: int) -> Config:
    devices = [{"name": f"rtu{i}", "kind": "rtu", "protocol": "dnp3", "host": h, "port": port, "poll_interval": "500ms",
                "timeout": "1s", "dnp3": {"outstation_address": 10 + i, "integrity_interval": "1s"}, "points": [
                    {"name": "P", "group": "analog", "index": 0, "deadband": 0.0,
                     "measurement": {"equipment": f"SUB/B/L{i}", "type": "ThreePhaseActivePower"},
                     "signal": {"kind": "constant", "value": 111.0 * (i + 1)}}]}
               for i, h in enumerate(HOSTS)]
    return Config.model_validate({
        "site": {"name": "SHARED"}, "gateway": {"id": "gw-shared"},
        "substations": [{"name": "SUB", "bays": [{"name": "B", "equipment": [
            {"name": f"L{i}", "type": "EnergyConsumer"} for i in range(2)]}]}],
        "devices": devices})


async def test_outstations_on_their_own_addresses_share_one_socket() -> None:
    port = free_port()
    cfg = site(port)
    async with Emulator(cfg, tick=0.1) as emu:
        assert emu.listeners.ports == {port: ["rtu0", "rtu1"]}
        socks = listening_sockets(port)
        try:
            assert [s.getsockname() for s in socks] == [("0.0.0.0", port)]
        finally:
            for s in socks:
                s.close()
        rtu0, rtu1 = cfg.devices
        async with source(rtu0, port) as (src0, got0), source(rtu1, port) as (src1, got1):
            await got0.wait_for(lambda rs: any(r.key == "rtu0/P" for r in rs), 10)
            await got1.wait_for(lambda rs: any(r.key == "rtu1/P" for r in rs), 10)
            assert {round(r.value, 3) for r in got0.of("rtu0/P")} == {111.0}
            assert {round(r.value, 3) for r in got1.of("rtu1/P")} == {222.0}
            assert emu.devices["rtu0"].server.counters["connections"] == 1 == emu.devices["rtu1"].server.counters["connections"]
            inj = Injector(emu)
            a = await inj.inject({"device": "rtu0"}, {"kind": "disconnect"})
            assert await closed_at_once("127.0.0.2", port)  # its address is gone ...
            n = len(got1.items)
            await got1.wait_for(lambda rs: len(rs) > n + 1, 10)  # ... its neighbour keeps reporting
            assert src1.connected and {round(r.value, 3) for r in got1.items[n:] if r.key == "rtu1/P"} == {222.0}
            assert len(listening_sockets_closed(port)) == 1
            await inj.clear(a.id)
            m = len(got0.items)
            await got0.wait_for(lambda rs: any(r.key == "rtu0/P" and r.quality == 0 for r in rs[m:]), 15)
            assert src0.connected


def listening_sockets_closed(port: int) -> list[tuple]:
    socks = listening_sockets(port)
    try:
        return [s.getsockname() for s in socks]
    finally:
        for s in socks:
            s.close()


async def test_an_address_no_outstation_has_is_reset() -> None:
    port = free_port()
    async with Emulator(site(port), tick=0.1) as emu:
        with socket.create_connection((HOSTS[0], port), timeout=5):
            pass
        assert await closed_at_once("127.0.0.9", port) and emu.listeners.refused == 1
