"""Child, run inside a fresh network namespace (unshare -n): an emulated IED publishing GOOSE on the
namespace's loopback and the gateway's GOOSE subscriber; prints what arrived as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import time

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

from devices.iec61850.server import Iec61850Ied  # noqa: E402
from gateway.protocols.iec61850.config import Iec61850Device  # noqa: E402
from gateway.southbound.iec61850.connection import MmsConnection  # noqa: E402
from gateway.southbound.iec61850.goose import GooseSubscriber  # noqa: E402

dev = Iec61850Device.model_validate_json(sys.argv[1])
ied = Iec61850Ied(dev)
ied.start()
got: list[dict] = []
conn = MmsConnection(dev.host, dev.port, 2.0)
conn.connect()
members = conn.dataset_members(f"{dev.iec61850.ied_name or dev.name}PROT/LLN0$dsGoose")
sub = GooseSubscriber(dev.name, "lo", lambda r: got.append(
    {"key": r.key, "value": r.value, "q": r.quality, "t": r.timestamp, "event": r.event}))
ld = f"{dev.iec61850.ied_name or dev.name}PROT"
sub.subscribe(f"{ld}/LLN0$GO$gcb01", members, dev.points)
sub.start()


def wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred():
        time.sleep(0.02)


wait(lambda: sub.stats.changes >= 1)  # the first message after enabling: the initial state
stamps = {}
stamps["close"] = t1 = round(time.time(), 3)
ied.update("Pos", 2, 0, t1)
wait(lambda: any(g["event"] and g["key"].endswith("/Pos") and g["value"] == 2 for g in got))
stamps["trip"] = t2 = round(time.time(), 3)
ied.update("Op", True, 0, t2)
wait(lambda: any(g["event"] and g["key"].endswith("/Op") and g["value"] == 1 for g in got))
time.sleep(2.0)  # retransmissions at 4, 8, 16 ... ms up to 1 s
print(json.dumps({"members": members, "got": got, "stamps": stamps, "stats": sub.stats.__dict__}), flush=True)
sub.stop()
conn.close()
ied.stop()
