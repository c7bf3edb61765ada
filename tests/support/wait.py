"""Waiting on a condition in async tests: ``poll`` says whether it came true in time, ``until`` fails if not."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable


async def poll(cond: Callable[[], Any], timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(step)
    return bool(cond())


async def until(cond: Callable[[], Any], timeout: float, step: float = 0.05) -> None:
    if not await poll(cond, timeout, step):
        raise AssertionError("condition not met in time")
