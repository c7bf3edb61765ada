"""A driver under test, run directly (no gateway): its Readings collected, with waiting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator

from gateway.pipeline import Reading


class Sink:
    """Collects Readings; ``wait`` polls a predicate with a deadline."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def __call__(self, r: Reading) -> None:
        self.readings.append(r)

    def of(self, point: str) -> list[Reading]:
        return [r for r in self.readings if r.key.endswith("/" + point)]

    def latest(self, point: str) -> Reading | None:
        got = self.of(point)
        return got[-1] if got else None

    async def wait(self, pred, timeout: float = 10.0, what: str = "condition"):  # noqa: ANN001, ANN201
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = pred()
            if got:
                return got
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last readings: {self.readings[-6:]}")


@contextlib.asynccontextmanager
async def running(src) -> AsyncIterator[Sink]:  # noqa: ANN001 - any Driver
    """``src.run`` in a task for the block; cancelled (and awaited) after it."""
    sink = Sink()
    task = asyncio.create_task(src.run(sink))
    try:
        yield sink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
