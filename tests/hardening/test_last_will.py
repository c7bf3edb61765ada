"""The last will says when the session connected (``connectedAt``), not pretend to be the time of
death; the retained heartbeat says when the gateway was last heard, and survives the will (issue 14)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime

from tests.support.mqtt import Collector
from tests.support.sites import modbus_site

PREFIX = "gridgate/v1/gw-test"


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_will_carries_connect_time_and_heartbeat_tells_last_heard(tmp_path, mosquitto):
    cfg, path = modbus_site(tmp_path)
    assert cfg.gateway.id == "gw-test"
    t_start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "gateway", "--config", str(path), "--broker",
                             mosquitto.url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async with Collector(mosquitto.port, [f"{PREFIX}/status", f"{PREFIX}/heartbeat"]) as sub:
            await sub.wait_for(lambda: (sub.latest("/status") or {}).get("state") == "online", 20, "online")
            await sub.wait_for(lambda: sub.latest("/heartbeat"), 10, "heartbeat")
            online, beat = sub.latest("/status"), sub.latest("/heartbeat")
            connected = _t(online["connectedAt"])
            assert t_start - 1 <= connected <= _t(online["timeStamp"]) and beat["connectedAt"] == online["connectedAt"]
            time.sleep(2.0)  # let the session age, so the connect time cannot pass for the time of death
            t_kill = time.time()
            proc.kill()
            proc.wait(5)
            await sub.wait_for(lambda: sub.latest("/status")["state"] == "offline", 60, "will message")
            will = sub.latest("/status")
        assert will["reason"] == "connection lost" and "timeStamp" not in will
        assert will["connectedAt"] == online["connectedAt"] and _t(will["connectedAt"]) < t_kill - 1.5
        # a late subscriber: offline since some time after the last heartbeat
        async with Collector(mosquitto.port, [f"{PREFIX}/status", f"{PREFIX}/heartbeat"]) as late:
            await late.wait_for(lambda: late.latest("/status") and late.latest("/heartbeat"), 5, "retained")
            last = late.latest("/heartbeat")
            assert late.latest("/status")["state"] == "offline"
            assert connected <= _t(last["timeStamp"]) <= t_kill and t_kill - _t(last["timeStamp"]) <= last["interval"] + 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
