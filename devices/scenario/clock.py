"""The scenario clock: one tick count drives both the firmware and the timeline.

Tick k happens at real time ``t0 + k*tick`` (loop clock, absolute schedule) and computes
the firmware at simulated time ``epoch + k*tick``; timeline events due at scenario time
``<= k*tick`` are applied just before tick k is computed. So with the same seed and the
same scenario every run computes the same value sequence, and every fault starts on the
same tick, whatever the machine's load; only which ticks a poller happens to sample
depends on real timing. Device timestamps (DNP3 / IEC 61850 event time) stay wall-clock,
so detection latencies are real.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from devices.emulator import Emulator

OnTick = Callable[[int, float], Awaitable[None]]


class ClockedEmulator(Emulator):
    """An Emulator whose firmware runs on simulated time ``epoch + k*tick``, held at tick 0 until ``go()``."""

    def __init__(self, cfg, seed: int = 0, tick: float = 0.1, epoch: float = 1_767_225_600.0,
                 on_tick: OnTick | None = None, **kw) -> None:
        self.epoch = epoch
        super().__init__(cfg, seed=seed, tick=tick, sim_time=lambda k: self.epoch + k * self.tick_period,
                         on_tick=on_tick, hold=True, **kw)

    def scenario_time(self) -> float:
        return self.k * self.tick_period
