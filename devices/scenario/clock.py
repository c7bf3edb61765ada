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

import asyncio
import time
from typing import Awaitable, Callable

from devices.emulator import Emulator

OnTick = Callable[[int, float], Awaitable[None]]


class ClockedEmulator(Emulator):
    """An Emulator whose firmware runs on simulated time ``epoch + k*tick``."""

    def __init__(self, cfg, seed: int = 0, tick: float = 0.1, epoch: float = 1_767_225_600.0,
                 on_tick: OnTick | None = None, **kw) -> None:
        super().__init__(cfg, seed=seed, tick=tick, **kw)
        self.epoch = epoch
        self.on_tick = on_tick
        self.k = 0
        self.t0_wall = 0.0  # wall time of tick 0
        self._go = asyncio.Event()

    def sim_time(self, k: int) -> float:
        return self.epoch + k * self.tick_period

    def scenario_time(self) -> float:
        return self.k * self.tick_period

    async def start(self) -> None:
        self.k = 0
        self.fw.tick(self.sim_time(0))
        self.t0_wall = time.time()
        for d in self.cfg.devices:
            if not d.enabled or (self._only is not None and d.name not in self._only):
                continue
            await self.start_device(d.name)
        self._task = asyncio.create_task(self._ticker(), name="firmware-tick")

    def go(self) -> float:
        """Start the clock (tick 0 is now); until then the firmware holds its tick-0 values."""
        self.t0_wall = time.time()
        self._go.set()
        return self.t0_wall

    async def _ticker(self) -> None:
        await self._go.wait()
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            self.k += 1
            await asyncio.sleep(max(0.0, start + self.k * self.tick_period - loop.time()))
            if self.on_tick is not None:
                await self.on_tick(self.k, self.k * self.tick_period)
            self.fw.tick(self.sim_time(self.k))
            now = time.time()
            for i in self.fw.take_changed():
                dev, pt = self._names[i]
                rd = self.devices.get(dev)
                if rd is not None and rd.update is not None:
                    rd.update(pt, self.fw.value(i), self.fw.quality(i), now)
