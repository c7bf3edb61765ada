"""How many idle connections an attacker can hold before a fresh master is locked out.

Before issue 14: 16 idle connections locked every new master out of a Modbus device,
5 out of an IED (libiec61850's compiled maximum), and one new connection replaced the gateway's DNP3 association.
Now: with 100 idle connections held, a fresh master is served (the oldest idle one is closed
for it), and the DNP3 outstation keeps its polling master against 100 intruders.
Figures are printed (``-s``) as ``held <protocol>: ...``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from devices.dnp3.outstation import Dnp3Outstation
from devices.iec61850.server import Iec61850Ied
from devices.modbus import ModbusServer
from devices.netguard import GuardLimits
from gateway.southbound.iec61850 import MmsSource
from tests.dnp3.conftest import source
from tests.dnp3.peer import device as dnp3_device
from tests.iec61850.conftest import fast_backoff, running
from tests.iec61850.support import ied_device
from tests.modbus.mbs_raw import Raw, make_model

HELD = 100


def _idle(port: int, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        try:
            out.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    return out


async def test_modbus_fresh_master_is_served_with_100_idle_connections_held(capsys: pytest.CaptureFixture[str]) -> None:
    limits = GuardLimits(max_connections=16, idle_timeout=0, evict_idle_after=0.5)
    async with ModbusServer(make_model(), limits=limits) as s:
        held: list[socket.socket] = []
        try:
            for _ in range(HELD):  # an attacker opening idle connections over two seconds
                held += _idle(s.port, 1)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.7)
            fresh = await Raw.open(s.port)
            reply = await fresh.call(struct.pack(">BHH", 3, 7, 1))
            assert reply == bytes((3, 2)) + struct.pack(">H", 1007)
            await fresh.close()
            g = s.guard.counters
            # how many are evicted rather than refused depends on timing; a full turnover of the cap at least
            assert len(held) == HELD and s.stats.connections_active <= 16 and g.evicted >= 16
            assert g.accepted + g.refused == HELD + 1
        finally:
            for c in held:
                c.close()
    with capsys.disabled():
        print(f"\nheld modbus: fresh master served with {HELD} idle connections opened (cap 16, {g.evicted} oldest idle closed)")


async def test_dnp3_outstation_keeps_its_master_against_100_intruders(capsys: pytest.CaptureFixture[str]) -> None:
    dev = dnp3_device([{"name": "P", "group": "analog", "index": 0}], event_poll_interval="200ms")
    async with asyncio.timeout(60):
        os_ = Dnp3Outstation(dev)
        await os_.start()
        try:
            os_.update("P", 1.0, 0, time.time())
            async with source(dev, os_.port) as (src, got):
                await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.quality == 0 for r in rs), 10)
                polls = src.stats["event_polls"]
                held = _idle(os_.port, HELD)
                try:
                    os_.update("P", 2.0, 0, time.time())
                    await got.wait_for(lambda rs: any(r.key == "rtu1/P" and r.value == 2.0 for r in rs), 10)
                    await asyncio.sleep(1.0)
                    assert src.connected and src.state.failures == 0 and src.stats["event_polls"] > polls
                    assert os_.counters["connections"] == 1 and os_.stats["guard"]["refused"] >= HELD * 0.9
                finally:
                    for c in held:
                        c.close()
        finally:
            await os_.stop()
    with capsys.disabled():
        print(f"\nheld dnp3: gateway association kept against {HELD} intruding connections (all refused)")


async def test_ied_fresh_client_is_served_with_100_idle_connections_held(capsys: pytest.CaptureFixture[str]) -> None:
    d = ied_device()
    d = d.model_copy(update={"connections": d.connections.model_copy(update={"idle_timeout": 0, "evict_idle_after": 0.5})})
    ied = Iec61850Ied(d)
    ied.start()
    held: list[socket.socket] = []
    try:
        for _ in range(HELD):  # at most cap + 1 are accepted at a time; the guard makes room every 0.5 s
            held += _idle(d.port, 1)
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.5)
        src = MmsSource(d, fast_backoff())
        async with running(src) as sink:
            await sink.wait(lambda: src.connected and sink.of(d.points[0].name), timeout=20, what="fresh client served")
        evicted = ied.guard.counters.evicted
        assert evicted >= 1 and ied.connections <= 5  # libiec61850 itself turns away what comes between sweeps
    finally:
        for c in held:
            c.close()
        ied.stop()
    with capsys.disabled():
        print(f"\nheld iec61850: fresh client served with {len(held)} idle connections opened (libiec61850 takes 5, {evicted} oldest idle closed)")
