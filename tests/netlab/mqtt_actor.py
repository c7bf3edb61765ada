"""Tiny MQTT clients (gmqtt) run inside zones by the tests.

``pub HOST PORT TOPIC --count N --interval S``: publish {"seq": i, "value": i*1.5, "t": time}
at QoS 1, reconnecting across outages; prints one JSON line {"published": N}.
``sub HOST PORT TOPIC --count N --timeout S``: print "ready", then each message as a JSON line
(payload decoded) until N arrived or the timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

from gmqtt import Client


async def pub(a: argparse.Namespace) -> None:
    c = Client(f"pub-{uuid.uuid4().hex[:8]}")
    c.set_config({"reconnect_retries": 1000, "reconnect_delay": 1})
    await asyncio.wait_for(c.connect(a.host, a.port, keepalive=60), a.timeout)
    for i in range(a.count):
        msg = json.dumps({"seq": i, "value": i * 1.5, "t": time.time()})
        while True:  # the broker's receive-maximum bounds QoS 1 messages in flight: back off
            try:
                c.publish(a.topic, msg, qos=1)
                break
            except OverflowError:
                await asyncio.sleep(0.05)
        await asyncio.sleep(a.interval)
    # wait for every QoS 1 publish to be acknowledged (gmqtt retries across reconnects)
    deadline = time.monotonic() + a.timeout
    while c._persistent_storage and not c._persistent_storage.is_empty and time.monotonic() < deadline:  # noqa: SLF001
        await asyncio.sleep(0.1)
    await c.disconnect()
    print(json.dumps({"published": a.count}), flush=True)


async def sub(a: argparse.Namespace) -> None:
    got = 0
    seen: set = set()
    done = asyncio.Event()
    subscribed = asyncio.Event()

    def on_message(client, topic, payload, qos, props):  # noqa: ANN001
        nonlocal got
        body = json.loads(payload)
        seq = body.get("seq") if isinstance(body, dict) else None
        if not a.unique or seq not in seen:  # --unique: QoS 1 duplicates do not count towards --count
            got += 1
        seen.add(seq)
        print(json.dumps({"topic": topic, "payload": body, "rx": time.time()}), flush=True)
        if got >= a.count:
            done.set()
        return 0

    c = Client(f"sub-{uuid.uuid4().hex[:8]}")
    c.on_message = on_message
    c.on_subscribe = lambda *args: subscribed.set()
    await asyncio.wait_for(c.connect(a.host, a.port), 10)
    c.subscribe(a.topic, qos=1)
    await asyncio.wait_for(subscribed.wait(), 10)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), a.timeout)
    except asyncio.TimeoutError:
        pass
    await c.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pub", "sub"])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("topic")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--unique", action="store_true")
    a = ap.parse_args()
    asyncio.run(pub(a) if a.mode == "pub" else sub(a))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
