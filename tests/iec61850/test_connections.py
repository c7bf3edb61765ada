"""Idle TCP peers cannot lock MMS clients out of the emulated IED (devices/netguard.py ForeignGuard)."""

from __future__ import annotations

import asyncio
import socket
import time

from devices.iec61850.server import Iec61850Ied
from gateway.southbound.iec61850 import MmsSource
from tests.iec61850.conftest import fast_backoff, running
from tests.iec61850.support import ied_device


def _dev(**conn):  # noqa: ANN202
    d = ied_device()
    return d.model_copy(update={"connections": d.connections.model_copy(update=conn)})


async def _wait(cond, timeout: float = 10.0) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


def _is_closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


async def test_idle_peers_at_the_cap_make_room_for_the_gateway() -> None:
    dev = _dev(max_connections=3, idle_timeout=0, evict_idle_after=0.3)
    ied = Iec61850Ied(dev)
    ied.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(4):  # the cap plus the spare slot, all silent
            idle.append(socket.create_connection(("127.0.0.1", dev.port), timeout=2))
        assert await _wait(lambda: ied.guard.counters.evicted >= 1)
        assert await _wait(lambda: sum(_is_closed(s) for s in idle) >= 1)
        src = MmsSource(dev, fast_backoff())
        async with running(src) as sink:
            await sink.wait(lambda: src.connected and sink.of(dev.points[0].name), timeout=15, what="gateway gets in")
            assert ied.connections <= 4
        assert ied.guard.counters.refused == 0
    finally:
        for s in idle:
            s.close()
        ied.stop()


async def test_silent_peer_is_closed_after_the_idle_timeout_but_the_gateway_stays() -> None:
    dev = _dev(idle_timeout=1.5)
    ied = Iec61850Ied(dev)
    ied.start()
    silent = socket.create_connection(("127.0.0.1", dev.port), timeout=2)
    try:
        src = MmsSource(dev, fast_backoff())
        async with running(src) as sink:
            await sink.wait(lambda: src.connected, timeout=15, what="gateway connected")
            assert await _wait(lambda: _is_closed(silent), timeout=10)
            assert ied.guard.counters.idle_closed >= 1
            await asyncio.sleep(2.0)  # longer than the idle timeout: the gateway's traffic keeps it
            assert src.connected and ied.connections == 1
    finally:
        silent.close()
        ied.stop()


async def test_sweeps_leak_no_descriptors() -> None:
    import os

    from devices.netguard import ForeignGuard

    dev = _dev()
    ied = Iec61850Ied(dev)
    ied.start()
    peers = [socket.create_connection(("127.0.0.1", dev.port), timeout=2) for _ in range(3)]
    try:
        fg = ForeignGuard(ied.guard, dev.host, dev.port)
        for _ in range(100):  # libiec61850 accepts on its own thread
            fg.sweep()
            if len(ied.guard.conns) == 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(200):
            fg.sweep()
        assert len(os.listdir("/proc/self/fd")) == before
        assert len(ied.guard.conns) == 3
    finally:
        for s in peers:
            s.close()
        ied.stop()


async def test_ieds_of_one_loop_share_one_inspection_pass_each_seeing_its_own_connections() -> None:
    """One task per event loop inspects every IED's connections in one pass over the process's descriptors
    (a pass per IED was quadratic: 300 servers, 1.88 CPU-s every 0.5 s against 10 ms, docs/performance.md);
    each IED's guard still sees exactly its own peers, and the task ends with the last IED."""
    from devices.netguard import _ForeignRound

    devs = [_dev(), _dev()]
    ieds = [Iec61850Ied(d) for d in devs]
    for ied in ieds:
        ied.start()
    peers = [[socket.create_connection(("127.0.0.1", d.port), timeout=2) for _ in range(n)] for d, n in zip(devs, (1, 3))]
    try:
        rounds = _ForeignRound._rounds[asyncio.get_running_loop()]
        assert list(rounds) == [0.5] and len(rounds[0.5].guards) == 2
        names = [t.get_name() for t in asyncio.all_tasks()]
        assert names.count("C servers' connections every 0.5 s") == 1
        assert await _wait(lambda: [len(i.guard.conns) for i in ieds] == [1, 3])
        mine = [{f"127.0.0.1:{s.getsockname()[1]}" for s in ps} for ps in peers]
        assert [{c.peer for c in i.guard.conns} for i in ieds] == mine
        assert [i.guard.counters.accepted for i in ieds] == [1, 3]
    finally:
        for ps in peers:
            for s in ps:
                s.close()
        for ied in ieds:
            ied.stop()
    await asyncio.sleep(0)
    assert not rounds[0.5].guards
    assert "C servers' connections every 0.5 s" not in [t.get_name() for t in asyncio.all_tasks() if not t.done()]
