"""Child, inside a fresh network namespace: an emulated IED publishing GOOSE on lo and the gateway's
MMS driver subscribed to it (iec61850.goose_subscribe); prints the events the driver emitted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

from devices.iec61850.server import Iec61850Ied  # noqa: E402
from gateway.protocols.iec61850.config import Iec61850Device  # noqa: E402
from gateway.southbound.iec61850 import MmsSource  # noqa: E402
from tests.iec61850.conftest import fast_backoff, running  # noqa: E402


async def main() -> None:
    dev = Iec61850Device.model_validate_json(sys.argv[1])
    ied = Iec61850Ied(dev)
    ied.start()
    src = MmsSource(dev, fast_backoff())
    async with running(src) as sink:
        await sink.wait(lambda: src.connected and sink.of("Pos"), timeout=15, what="GI")
        await sink.wait(lambda: src._goose is not None and src._goose.stats.changes >= 1, timeout=5, what="GOOSE")
        ts = round(time.time(), 3)
        ied.update("Pos", 2, 0, ts)
        await sink.wait(lambda: [r for r in sink.of("Pos") if r.event and r.value == 2], what="close")
        await asyncio.sleep(1.0)
        events = [{"value": r.value, "t": r.timestamp} for r in sink.of("Pos") if r.event]
        stats = dict(src._goose.stats.__dict__)
    ied.stop()
    print(json.dumps({"events": events, "ts": ts, "goose": stats}), flush=True)


asyncio.run(main())
