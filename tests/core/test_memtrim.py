"""The gateway's heap trim gives freed burst memory back to the OS (issue 18: RSS at 10k points)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.memtrim import malloc_trim, trim_heap_forever


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_trim_returns_the_pages_a_burst_freed() -> None:
    trim = malloc_trim()
    if trim is None:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    burst = [bytes(700 + i % 7) for i in range(100_000)]  # ~70 MB of payload-sized objects, like a poll round
    survivors = burst[::50] + [bytes(700)]  # a few outlive the round, one at the top of the heap
    before = _rss_mib()
    del burst
    freed = _rss_mib()
    trim(0)
    after = _rss_mib()
    assert before - freed < 20, "free() alone keeps most of it (the heap top is in use): the case trim is for"
    assert freed - after > 40, f"trim returned only {freed - after:.1f} MiB of ~70"
    assert len(survivors) == 2001


def test_the_trim_task_runs_until_cancelled() -> None:
    async def run() -> bool:
        task = asyncio.create_task(trim_heap_forever(period=0.01))
        await asyncio.sleep(0.05)
        alive = not task.done()
        task.cancel()
        return alive

    assert asyncio.run(run()) is (malloc_trim() is not None)
