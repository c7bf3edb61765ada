"""The real northbound path (segment-log Spool + MqttPublisher) on a small tmpfs that the test fills.

Runs inside ``unshare --user --map-root-user --mount`` with the tmpfs mounted at ``dir``.
Phases, each reported as one JSON line on stdout; after a line ending a phase marked
``wait`` it reads one line from stdin (the test stops or starts the broker meanwhile):

A  disk fine, broker up       B  disk full, broker up          C  disk full, broker down (wait before, after)
D  space back: time to "ok"   E  broker down, backlog written: byte accounting vs the file (wait before, after)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from gateway.northbound.mqtt import MqttPublisher
from gateway.northbound.segment_log import inspect
from gateway.northbound.spool import Spool

TOPIC = "gg/diskfull/v"


def fill(where: Path) -> int:
    """Write a filler file until the file system is full; returns its size."""
    size = 0
    fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    size += os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return size


async def main(a: argparse.Namespace) -> None:
    where = Path(a.dir)
    spool = Spool(where / "spool.db", max_bytes=1 << 20, memory_limit=a.memory_limit, retry_interval=0.5, batch=100)
    pub = MqttPublisher(f"mqtt://127.0.0.1:{a.port}", "gg-diskfull", outbox=spool, keepalive=2, connect_timeout=2.0)
    await pub.start()
    n = 0
    seen_states: set[str] = set()

    async def burst(count: int) -> None:
        nonlocal n
        for i in range(count):
            n += 1
            event = n % 5 == 0  # every fifth value an event (QoS 1), the rest analog (QoS 0)
            payload = json.dumps({"n": n, "pad": "x" * 200}).encode()
            pub.publish(TOPIC, payload, 1 if event else 0, kind="event" if event else "analog", seq=n)
            seen_states.add(spool.state)
            if i % 20 == 19:
                await asyncio.sleep(0.01)
                seen_states.add(spool.state)

    def report(phase: str, **extra: object) -> None:
        st = pub.stats
        out = {"phase": phase, "n": n, "state": spool.state, "seen_states": sorted(seen_states),
               "write_failures": spool.write_failures, "last_write_error": spool.last_write_error, "dropped": dict(st.dropped), "published": st.published,
               "queued": st.queued, "connected": pub.connected, "status": spool.status(), **extra}
        print(json.dumps(out), flush=True)
        seen_states.clear()

    async def go() -> None:
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        assert line.strip() == "go", line

    await burst(100)
    report("A", drained=await pub.drain(30))
    filler = fill(where)
    await burst(300)
    drained = await pub.drain(30)
    await burst(2000)  # a long stretch of disk full with the broker up: memory must hold only the undelivered
    report("B", drained=drained and await pub.drain(30), filler=filler, held_in_memory=len(spool._pending))
    await go()  # the test stops the broker
    await burst(400)
    await asyncio.sleep(1.0)
    report("C")
    await go()  # the test starts the broker again
    report("C2", drained=await pub.drain(30))
    t0 = time.monotonic()
    (where / "filler").unlink()
    while spool.state != "ok" and time.monotonic() - t0 < 20:
        await asyncio.sleep(0.05)
    recovery = time.monotonic() - t0
    await burst(100)
    report("D", recovery_s=round(recovery, 3), drained=await pub.drain(30))
    await go()  # the test stops the broker
    await burst(200)
    await asyncio.sleep(0.5)
    spool.flush()
    rows, size = inspect(where / "spool.db")
    report("E", file_rows=rows, file_bytes=size, accounted_bytes=spool._bytes, accounted_rows=len(spool))
    await go()  # the test starts the broker again
    drained = await pub.drain(30)
    spool.flush()  # deletions of delivered rows are committed every max_delay; do it now
    report("E2", drained=drained, file_rows=inspect(where / "spool.db")[0], accounted_bytes=spool._bytes)
    await pub.stop()
    spool.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("dir")
    ap.add_argument("--memory-limit", type=int, default=200)
    asyncio.run(main(ap.parse_args()))
