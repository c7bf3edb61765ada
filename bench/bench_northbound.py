"""Northbound speed: spool append rate (the segment-log spool vs SQLite inserts), live
publish throughput with the spool on vs off (same run, same broker), the drain rate of a
large spooled backlog after a broker outage, and libmosquitto's ``mosquitto_pub`` publishing
the same messages to the same broker (CPU per message: the peer ratio of issue 18), and the
outbox alone without a broker (``spool``: its own CPU per value, the steadiest figure).

    python bench/bench_northbound.py [--live 200000] [--backlog 1000000] [--payload 300]
                                     [--parts append,spool,live,drain,peer]

Publisher and Mosquitto share the 2-core machine; messages are ~300-byte JSON values.
"Live" feeds values the way the gateway does (the normaliser's lists of 1000 values through
``MqttPublisher.publish_many``, yielding to the loop between them) and times until every
value is on the wire (QoS 0) or acknowledged (QoS 1). Wall-clock rates swing with other load
on the machine; the publisher's own CPU time per value does not, so the spool cost is given
both ways (best-of wall clock; median CPU). ``mosquitto_pub -l`` (one message per stdin line,
``-M`` in flight as our window) is timed by its own CPU (``wait4``); it needs mosquitto-clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.northbound.message import ValueMessage  # noqa: E402
from gateway.northbound.mqtt import MqttPublisher  # noqa: E402
from gateway.northbound.spool import Spool  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402


def payload_of(seq: int, size: int) -> bytes:
    base = {"seq": seq, "mRID": "5b3c0a52-8f0e-5d3a-9a63-3a1b6a0c2f11", "value": 11021.5, "q": "GOOD",
            "t": "2026-11-22T16:00:00.123Z", "unit": "V", "type": "PhaseVoltage"}
    raw = json.dumps(base)
    return (raw[:-1] + ', "pad": "' + "x" * max(0, size - len(raw) - 11) + '"}').encode()


def bench_append(n: int, size: int, tmp: Path) -> dict:
    """Appends/s written (durable against a process crash), 1000 per flush: the spool (a segment log
    since issue 18) one ``append`` at a time and (where it has ``put_many``) a list of 1000 per call,
    against SQLite in WAL mode doing the same inserts (what the spool was before)."""
    import sqlite3

    pl = payload_of(1, size)
    sp = Spool(tmp / "append.spool", max_bytes=1 << 40, batch=1000, max_delay=3600)
    t0 = time.perf_counter()
    for seq in range(1, n + 1):
        sp.append(seq, "analog", "gridgate/v1/gw1/meas/x", pl)
    sp.flush()
    spool_rate = n / (time.perf_counter() - t0)
    sp.close()
    batched_rate = None
    if hasattr(Spool, "put_many"):  # the normaliser's lists of 1000, one call each (what the gateway does)
        sp = Spool(tmp / "batched.spool", max_bytes=1 << 40, batch=1000, max_delay=3600)
        batches = [[ValueMessage("gridgate/v1/gw1/meas/x", pl, 0, False, None, 0.0, "analog", s)
                    for s in range(k, min(k + 1000, n + 1))] for k in range(1, n + 1, 1000)]
        t0 = time.perf_counter()
        for b in batches:
            sp.put_many(b, time.time())
        sp.flush()
        batched_rate = n / (time.perf_counter() - t0)
        sp.close()
    db = sqlite3.connect(tmp / "append.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE spool (seq INTEGER PRIMARY KEY, kind INTEGER, topic TEXT, payload BLOB, qos INTEGER,"
               " retain INTEGER, expiry INTEGER, t REAL)")
    t0 = time.perf_counter()
    rows = []
    for seq in range(1, n + 1):
        rows.append((seq, 0, "gridgate/v1/gw1/meas/x", pl, 0, 0, None, time.time()))
        if len(rows) == 1000 or seq == n:
            db.execute("BEGIN")
            db.executemany("INSERT INTO spool VALUES (?,?,?,?,?,?,?,?)", rows)
            db.execute("COMMIT")
            rows.clear()
    sqlite_rate = n / (time.perf_counter() - t0)
    db.close()
    out = {"spool_appends_per_s": round(spool_rate), "sqlite_inserts_per_s": round(sqlite_rate)}
    if batched_rate is not None:
        out["spool_put_many_per_s"] = round(batched_rate)
    return out


def spool_alone(n: int, size: int, qos: int, burst: bool, tmp: Path, repeat: int) -> dict:
    """The outbox's own CPU per value, no broker: lists of 1000 values put (``put_many`` where the outbox has
    it), then taken and acknowledged — after each list (``burst`` False: the publisher keeps up) or after all
    ``n`` (True: a backlog beyond the spool's in-memory window, written and read back). Memory queue vs spool,
    median of ``repeat``: steadier than the live runs, which share the machine with Mosquitto."""
    from gateway.northbound.outbox import MemoryOutbox

    pl = payload_of(1, size)

    def run(box) -> float:
        lists = [[ValueMessage(f"gridgate/v1/gw1/meas/x{s % 500}", pl, qos, False, None, 0.0, "analog", s)
                  for s in range(k, min(k + 1000, n + 1))] for k in range(1, n + 1, 1000)]
        put_many, flush = getattr(box, "put_many", None), getattr(box, "flush", lambda: None)
        c0 = time.process_time()

        pop0 = getattr(box, "pop_qos0", None)  # as the publisher: a QoS 0 head taken and done in one call

        def drain() -> None:
            while True:
                if pop0 is not None and pop0() is not None:
                    continue
                item = box.take()
                if item is None:
                    break
                box.done(item[0])

        for i, values in enumerate(lists, 1):
            if put_many is not None:
                put_many(values, time.time())
            else:
                for m in values:
                    m.born = time.time()
                    box.put(m, m.kind, m.seq)
            if not burst:
                drain()
            if i % 20 == 0:
                flush()  # the publisher's periodic flush, about every 20 lists at 400k values/s
        drain()
        flush()
        return (time.process_time() - c0) / n * 1e6

    mem, sp = [], []
    for r in range(repeat):
        mem.append(run(MemoryOutbox(n + 10)))
        spool = Spool(tmp / f"alone{qos}{burst}{r}.spool", max_bytes=1 << 40)
        sp.append(run(spool))
        spool.close()
    m, s = statistics.median(mem), statistics.median(sp)
    return {"memory_us_per_value": round(m, 2), "spool_us_per_value": round(s, 2), "spool_extra_us": round(s - m, 2)}


async def live(url: str, n: int, size: int, qos: int, spool_path: Path | None) -> tuple[float, float]:
    """(values/s wall clock, CPU µs per value in this process) — CPU time is robust to a busy machine."""
    spool = Spool(spool_path, max_bytes=1 << 40) if spool_path else None
    pub = MqttPublisher(url, f"bench-{qos}-{bool(spool)}", queue_size=n + 10, outbox=spool)
    await pub.start()
    pl = payload_of(1, size)
    t0, c0 = time.perf_counter(), time.process_time()
    seq = 0
    while seq < n:
        k = min(1000, n - seq)  # one list per poll, as the normaliser hands them over (its Publications)
        pub.publish_many([ValueMessage("gridgate/v1/gw1/meas/x", pl, qos, False, None, 0.0, "analog", s)
                          for s in range(seq + 1, seq + k + 1)])
        seq += k
        await asyncio.sleep(0)  # the pipeline yields between batches
    assert await pub.drain(600), pub.stats.as_dict()
    rate = n / (time.perf_counter() - t0)
    cpu_us = (time.process_time() - c0) / n * 1e6
    await pub.stop()
    if spool:
        spool.close()
    return rate, cpu_us


async def backlog_drain(url: str, n: int, size: int, qos: int, tmp: Path) -> dict:
    path = tmp / f"backlog{qos}.spool"
    sp = Spool(path, max_bytes=1 << 40, batch=5000, max_delay=3600)
    pl = payload_of(1, size)
    for seq in range(1, n + 1):
        sp.append(seq, "analog", "gridgate/v1/gw1/meas/x", pl, qos=qos)
    sp.close()
    file_mb = sum(p.stat().st_size for p in path.iterdir()) / 1e6
    sp = Spool(path, max_bytes=1 << 40)  # a restart with a full spool, as after an outage
    pub = MqttPublisher(url, f"bench-drain-{qos}", outbox=sp)
    t0 = time.perf_counter()
    await pub.start()
    assert await pub.drain(1800), pub.stats.as_dict()
    dt = time.perf_counter() - t0
    await pub.stop()
    sp.close()
    shutil.rmtree(path)
    return {"values": n, "qos": qos, "spool_file_MB": round(file_mb), "seconds": round(dt, 1), "values_per_s": round(n / dt)}


def mosquitto_pub_binary() -> str:
    binary = shutil.which("mosquitto_pub")
    if binary is None:
        raise SystemExit("--parts peer: mosquitto_pub is not installed (apt-get install -y mosquitto-clients), "
                         "or leave peer out of --parts")
    return binary


def mosquitto_pub(port: int, n: int, size: int, qos: int, tmp: Path) -> tuple[float, float]:
    """(messages/s wall clock, CPU µs per message) of libmosquitto's client publishing ``n`` values, one per
    line of its stdin, at most 1000 QoS 1 in flight (our window), MQTT 5, to the same broker."""
    lines = tmp / "lines.txt"
    if not lines.exists() or lines.stat().st_size == 0:
        lines.write_bytes(b"".join(payload_of(1, size) + b"\n" for _ in range(n)))
    binary = mosquitto_pub_binary()
    with open(lines, "rb") as stdin:
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary, "-h", "127.0.0.1", "-p", str(port), "-V", "5", "-q", str(qos), "-M", "1000",
                                 "-i", f"bench-mosquitto-pub-{qos}", "-t", "gridgate/v1/gw1/meas/x", "-l"], stdin=stdin)
        _pid, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"mosquitto_pub exited {proc.returncode}")
    return n / dt, (usage.ru_utime + usage.ru_stime) / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--live", type=int, default=200_000, help="values per live run (default 200000)")
    ap.add_argument("--backlog", type=int, default=1_000_000, help="values spooled before a drain run")
    ap.add_argument("--payload", type=int, default=300, help="payload bytes per value")
    ap.add_argument("--repeat", type=int, default=3, help="live runs per configuration (interleaved)")
    ap.add_argument("--parts", default="append,spool,live,drain,peer",
                    help="what to run, comma-separated: append, spool (the outbox alone, no broker), live, drain, "
                         "peer (mosquitto_pub)")
    args = ap.parse_args()
    args.parts = set(args.parts.split(","))
    if args.parts - {"append", "spool", "live", "drain", "peer"}:
        ap.error(f"--parts {','.join(sorted(args.parts))}: use append, spool, live, drain, peer")
    if "peer" in args.parts:
        mosquitto_pub_binary()  # named before the first part runs, not after minutes of it
    tmp = Path(tempfile.mkdtemp(prefix="gg-bench-nb-"))
    try:
        await run_all(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def run_all(args: argparse.Namespace, tmp: Path) -> None:
    results: dict = {}
    if "append" in args.parts:
        results["append"] = bench_append(args.live, args.payload, tmp)
        print("append", results["append"], flush=True)
    for qos in (0, 1) if "spool" in args.parts else ():
        for burst in (False, True):
            key = f"spool_alone_qos{qos}_{'burst' if burst else 'kept_up'}"
            results[key] = spool_alone(args.live, args.payload, qos, burst, tmp, args.repeat)
            print(key, results[key], flush=True)
    with Mosquitto(extra="max_inflight_messages 1000\nmax_queued_messages 0\n") as broker:
        for qos in (0, 1) if args.parts & {"live", "peer"} else ():
            off, on, peer = [], [], []
            for r in range(args.repeat):  # interleaved so drift hits both alike
                if "live" in args.parts:
                    off.append(await live(broker.url, args.live, args.payload, qos, None))
                    on.append(await live(broker.url, args.live, args.payload, qos, tmp / f"live{qos}-{r}.db"))
                if "peer" in args.parts:
                    peer.append(mosquitto_pub(broker.port, args.live, args.payload, qos, tmp))
            res: dict = {}
            if off:
                best_off, best_on = max(x[0] for x in off), max(x[0] for x in on)
                cpu_off, cpu_on = statistics.median(x[1] for x in off), statistics.median(x[1] for x in on)
                res = {"spool_off_per_s": round(best_off), "spool_on_per_s": round(best_on),
                       "spool_cost_pct_wall": round(100 * (1 - best_on / best_off), 1),
                       "cpu_us_per_value_off": round(cpu_off, 2), "cpu_us_per_value_on": round(cpu_on, 2),
                       "spool_cost_pct_cpu": round(100 * (cpu_on / cpu_off - 1), 1),
                       "cpu_us_all_runs_off": [round(x[1], 2) for x in off],
                       "cpu_us_all_runs_on": [round(x[1], 2) for x in on]}
            if peer:
                cpu_peer = statistics.median(x[1] for x in peer)
                res |= {"mosquitto_pub_per_s": round(max(x[0] for x in peer)),
                        "mosquitto_pub_cpu_us_per_msg": round(cpu_peer, 2)}
                if off:  # the ratio: our publisher's CPU per message (no spool) over libmosquitto's
                    res["cpu_ratio_vs_mosquitto_pub"] = round(statistics.median(x[1] for x in off) / cpu_peer, 2)
            res["load_avg_1m"] = round(os.getloadavg()[0], 1)
            results[f"live_qos{qos}"] = res
            print(f"live qos{qos}", res, flush=True)
        for qos in (0, 1) if "drain" in args.parts else ():
            results[f"drain_qos{qos}"] = await backlog_drain(broker.url, args.backlog, args.payload, qos, tmp)
            print(f"drain qos{qos}", results[f"drain_qos{qos}"], flush=True)
    print(json.dumps(results, indent=2), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
