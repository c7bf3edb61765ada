"""A minimal gateway process for crash tests: values → seq → spool → MqttPublisher.

``python -m tests.northbound.gw_child URL SPOOL RUN COUNT RATE [QOS]``: produce COUNT values
(0 = until killed) at RATE/s, printing ``committed <seq>`` as the spool acknowledges them;
with a COUNT, drain everything and exit cleanly, printing ``done <last seq>``.
"""

import asyncio
import json
import sys

from gateway.northbound.message import Message
from gateway.northbound.mqtt import MqttPublisher
from gateway.northbound.spool import Spool
from gateway.pipeline import Backoff


async def main(url: str, path: str, run: str, count: int, rate: float, qos: int) -> None:
    spool = Spool(path, max_delay=0.02)
    pub = MqttPublisher(url, "gw-crash", will=Message("gg/status", b"offline", 1, True), outbox=spool,
                        backoff=Backoff(initial=0.1, maximum=0.5))
    await pub.start()
    seq, n, shown = spool.last_seq, 0, 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while count == 0 or n < count:
        n += 1
        seq += 1
        kind = "event" if seq % 10 == 0 else "analog"
        pub.publish("gg/v", json.dumps({"seq": seq, "run": run}).encode(), qos=qos, kind=kind, seq=seq)
        if spool.committed_seq != shown:
            shown = spool.committed_seq
            print("committed", shown, flush=True)
        await asyncio.sleep(max(0.0, t0 + n / rate - loop.time()))
    spool.flush()
    print("committed", spool.committed_seq, flush=True)
    ok = await pub.drain(20)
    await pub.stop()
    spool.close()
    print("done" if ok else "undrained", seq, flush=True)


if __name__ == "__main__":
    url, path, run, count, rate = sys.argv[1:6]
    asyncio.run(main(url, path, run, int(count), float(rate), int(sys.argv[6]) if len(sys.argv) > 6 else 1))
