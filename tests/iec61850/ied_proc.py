"""Child process: one emulated IED on an asyncio loop, commanded by JSON lines on stdin."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from devices.iec61850.server import Iec61850Ied
from gateway.protocols.iec61850.config import Iec61850Device


async def main() -> None:
    device = Iec61850Device.model_validate_json(sys.argv[1])
    refuse = sys.argv[2] == "1"
    ied: Iec61850Ied

    def on_control(point: str, value: int | float) -> bool:
        if refuse:
            return False
        ied.update(point, value, 0, time.time())  # the "firmware" follows the command
        return True

    ied = Iec61850Ied(device, on_control)
    ied.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "update":
                ied.update(cmd["point"], cmd["value"], cmd["quality"], cmd["ts"])
                out = {}
            elif op == "burst":  # n rounds of every point, for the bench
                for k in range(cmd["n"]):
                    now = time.time()
                    ied.update_many([(p, k + i * 0.001, 0, now) for i, p in enumerate(cmd["points"])])
                out = {}
            elif op == "stats":
                out = {"controls": ied.controls, "updates": ied.updates, "connections": ied.connections}
            else:
                out = {"error": f"unknown op {op}"}
        except Exception as e:  # report back, keep serving
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
    ied.stop()


asyncio.run(main())
