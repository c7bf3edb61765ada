"""The gateway's real northbound path (SQLite Spool + MqttPublisher) as a process in the
gateway zone: publish ``--count`` QoS 1 values every ``--interval`` s, then wait until the
spool is drained; print the publisher's counters and what is left in the spool as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from gateway.northbound.mqtt import MqttPublisher
from gateway.northbound.spool import Spool


async def main(a: argparse.Namespace) -> None:
    spool = Spool(a.spool)
    pub = MqttPublisher(f"mqtt://{a.host}:{a.port}", "gg-netlab-spool", outbox=spool, keepalive=a.keepalive,
                        connect_timeout=2.0)
    await pub.start()
    for i in range(a.count):
        payload = json.dumps({"seq": i, "value": i * 1.5, "t": time.time()}).encode()
        pub.publish(a.topic, payload, qos=1, kind="event")
        await asyncio.sleep(a.interval)
    drained = await pub.drain(a.timeout)
    stats = pub.stats.as_dict()
    await pub.stop()
    print(json.dumps({"drained": drained, "left_in_spool": len(spool), **stats}), flush=True)
    spool.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("topic")
    ap.add_argument("--spool", required=True)
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--keepalive", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20)
    asyncio.run(main(ap.parse_args()))
