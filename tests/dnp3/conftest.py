from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from devices.dnp3.outstation import Dnp3Outstation
from gateway.pipeline import Backoff, Reading
from gateway.protocols.dnp3.config import Dnp3Device
from gateway.southbound.dnp3.master import Dnp3Source


class Readings:
    """What a source emitted, with async waiting (everything runs on one loop)."""

    def __init__(self) -> None:
        self.items: list[Reading] = []
        self._changed = asyncio.Event()

    def __call__(self, r: Reading) -> None:
        self.items.append(r)
        self._changed.set()

    def of(self, key: str) -> list[Reading]:
        return [r for r in self.items if r.key == key]

    async def wait_for(self, pred: Callable[[list[Reading]], bool], timeout: float = 5.0) -> list[Reading]:
        deadline = time.monotonic() + timeout
        while not pred(self.items):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"condition not met within {timeout}s; last readings: {self.items[-6:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.items


@contextlib.asynccontextmanager
async def outstation(dev: Dnp3Device, **kw) -> AsyncIterator[Dnp3Outstation]:
    os_ = Dnp3Outstation(dev, **kw)
    await os_.start()
    try:
        yield os_
    finally:
        await asyncio.wait_for(os_.stop(), 5)


@contextlib.asynccontextmanager
async def source(dev: Dnp3Device, port: int) -> AsyncIterator[tuple[Dnp3Source, Readings]]:
    src = Dnp3Source(dev.model_copy(update={"port": port}), backoff=Backoff(initial=0.1, maximum=0.5))
    got = Readings()
    task = asyncio.create_task(src.run(got))
    try:
        yield src, got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)


async def until(pred, timeout: float = 3.0) -> None:
    """Poll ``pred`` every 20 ms until true; fail the test after ``timeout`` s."""
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")
