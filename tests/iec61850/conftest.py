import asyncio
import contextlib
import time
from typing import AsyncIterator

import pytest

from gateway.pipeline import Backoff, Reading
from gateway.southbound.iec61850 import MmsSource
from tests.iec61850.support import IedProcess, ied_device


class Sink:
    """Collects Readings; ``wait`` polls a predicate with a deadline."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def __call__(self, r: Reading) -> None:
        self.readings.append(r)

    def of(self, point: str) -> list[Reading]:
        return [r for r in self.readings if r.key.endswith("/" + point)]

    async def wait(self, pred, timeout: float = 5.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = pred()
            if got:
                return got
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last readings: {self.readings[-5:]}")


@contextlib.asynccontextmanager
async def running(src: MmsSource) -> AsyncIterator[Sink]:
    sink = Sink()
    task = asyncio.create_task(src.run(sink))
    try:
        yield sink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@pytest.fixture
def ied():
    """``ied(**device kwargs)`` → a started IedProcess (stopped after the test)."""
    procs: list[IedProcess] = []

    def make(refuse: bool = False, **kw) -> IedProcess:
        p = IedProcess(ied_device(**kw), refuse=refuse).start()
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop()


def fast_backoff() -> Backoff:
    return Backoff(initial=0.2, maximum=0.5)
