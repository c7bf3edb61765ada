"""The idle sweeps of many devices on one event loop (devices/netguard.py, ``_SweepRound``): one task,
the guards swept a slice per wake-up with the slices spread over the interval (a task per device woke
thousands of tasks in step every 5 s: docs/performance.md, "Stop 25"), and one device's failure does
not stop the others' sweeps."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest

from devices import netguard
from devices.netguard import ConnGuard, GuardLimits
from tests.support.wait import until


@dataclass
class _Conn:
    """What the guard keeps of a connection (the Guarded protocol): times and a close."""

    peer: str
    opened: float
    last_active: float
    closed: bool = False

    def close_by_guard(self, reason: str) -> None:
        self.closed = True


def _guards(n: int, idle_timeout: float, wakes: list[int] | None = None) -> tuple[list[ConnGuard], list[list[tuple[float, int]]]]:
    """Guards whose sweeps record (loop time, loop iterations so far as counted in ``wakes``)."""
    loop = asyncio.get_running_loop()
    guards = [ConnGuard(f"d{i}", GuardLimits(idle_timeout=idle_timeout)) for i in range(n)]
    times: list[list[tuple[float, int]]] = [[] for _ in guards]
    w = wakes if wakes is not None else [0]
    for g, t in zip(guards, times):
        sweep = g.sweep
        g.sweep = lambda sweep=sweep, t=t: (t.append((loop.time(), w[0])), sweep())[1]  # type: ignore[method-assign]
    return guards, times


async def test_guards_are_swept_a_slice_per_wake_up_spread_over_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netguard, "SWEEP_SLICE", 2)
    loop = asyncio.get_running_loop()
    wakes = [0]

    async def count_iterations() -> None:  # sleep(0): once per iteration of the loop
        while True:
            wakes[0] += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_iterations())
    guards, times = _guards(6, idle_timeout=0.4, wakes=wakes)  # interval 0.1 s: 3 slices of 2, one every 1/30 s
    t0 = loop.time()
    for g in guards:
        g.start_sweeps(loop)
    await until(lambda: all(len(t) >= 3 for t in times), 5.0, 0.02)
    for g in guards:
        g.stop_sweeps()
    counter.cancel()
    first = [t[0] for t in times]
    # the two guards of a slice in one wake-up, the three slices in three, in order
    assert [first[i][1] == first[i + 1][1] for i in (0, 2, 4)] == [True] * 3, first
    assert first[0][1] < first[2][1] < first[4][1], first
    for k in range(3):  # slice k not before (k + 1) steps
        assert first[2 * k][0] - t0 >= (k + 1) / 30 - 0.002, (k, first)
    for i, t in enumerate(times):  # each guard once per interval, never more often
        assert all(y[0] - x[0] >= 0.1 - 0.002 for x, y in zip(t, t[1:])), (i, t)
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("guard sweeps") and not t.done()]


async def test_an_idle_connection_is_closed_and_a_failing_guard_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="devices.netguard")
    loop = asyncio.get_running_loop()
    guards, _ = _guards(3, idle_timeout=0.4)
    now = guards[0].clock()
    idle = [_Conn(f"127.0.0.1:{1000 + i}", now, now) for i in range(3)]
    for g, c in zip(guards, idle):
        assert g.admit(c)
    guards[0].sweep = lambda: 1 / 0  # type: ignore[method-assign]
    for g in guards:
        g.start_sweeps(loop)
    await until(lambda: idle[1].closed and idle[2].closed, 5.0, 0.02)
    assert guards[0].clock() - now >= 0.4  # not before the idle time
    assert [g.counters.idle_closed for g in guards] == [0, 1, 1]
    assert "d0: idle sweep failed" in caplog.text and "ZeroDivisionError" in caplog.text
    for g in guards:
        g.stop_sweeps()


async def test_a_guard_on_a_new_interval_gets_its_own_round_and_stopping_twice_is_harmless() -> None:
    loop = asyncio.get_running_loop()
    (a,), _ = _guards(1, idle_timeout=0.4)
    (b,), _ = _guards(1, idle_timeout=40)
    a.start_sweeps(loop)
    b.start_sweeps(loop)
    names = sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("guard sweeps"))
    assert names == ["guard sweeps every 0.1 s", "guard sweeps every 5 s"]
    a.stop_sweeps()
    a.stop_sweeps()
    b.stop_sweeps()
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("guard sweeps") and not t.done()]
