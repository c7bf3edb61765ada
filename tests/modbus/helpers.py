"""Shared bits of the Modbus driver tests: device configs built in code, a Reading collector,
and running a session as a task with bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Callable

from gateway.pipeline import Backoff, Reading
from gateway.protocols.modbus.config import ModbusDevice, ModbusPoint
from gateway.southbound.modbus.driver import ModbusSource

WAIT = 5.0  # upper bound of any wait in these tests

_TYPE = {"Analog": "Voltage", "Discrete": "SwitchPosition", "Accumulator": "ActiveEnergy"}


def point(name: str, table: str, address: int, type_: str = "uint16", kind: str = "Analog", **kw: Any) -> ModbusPoint:
    return ModbusPoint(
        name=name,
        table=table,
        address=address,
        type=type_,
        measurement={"equipment": "S1/B1/E1", "type": _TYPE[kind], "phases": "none", "name": name},
        **kw,
    )


def device(points: list[ModbusPoint], port: int, poll: float = 0.2, timeout: float = 0.3, unit_id: int = 1, **modbus: Any) -> ModbusDevice:
    return ModbusDevice(
        name="pq1",
        kind="meter",
        protocol="modbus",
        host="127.0.0.1",
        port=port,
        unit_id=unit_id,
        poll_interval=poll,
        timeout=timeout,
        modbus=modbus,
        points=points,
    )


class Collector:
    """The emit callback: every Reading in order, the latest per key, and a way to wait."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.latest: dict[str, Reading] = {}
        self._changed = asyncio.Event()
        self.task: asyncio.Task | None = None  # the driver's run() task, set by running()

    def __call__(self, r: Reading) -> None:
        self.readings.append(r)
        self.latest[r.key] = r
        self._changed.set()

    async def until(self, cond: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> float:
        """Wait until ``cond()`` holds; returns the monotonic time it first held."""
        end = time.monotonic() + timeout
        while not cond():
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; latest: {self.latest}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return time.monotonic()

    def all_quality(self, keys: list[str], q: int) -> bool:
        return all(k in self.latest and self.latest[k].quality == q for k in keys)


@contextlib.asynccontextmanager
async def running(dev: ModbusDevice, backoff: Backoff | None = None) -> AsyncIterator[tuple[ModbusSource, Collector]]:
    s = ModbusSource(dev, backoff or Backoff(initial=0.05, maximum=0.2))
    c = Collector()
    task = c.task = asyncio.create_task(s.run(c))
    try:
        yield s, c
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
