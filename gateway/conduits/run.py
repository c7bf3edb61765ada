"""Process entry points for the conduits (what ``gridgate`` subcommands and the lab tests run
inside zones). Records come in as JSON lines ``{"topic", "payload" (text), "qos"?, "retain"?}``.

    python -m gateway.conduits.run diode-send HOST PORT [--copies N] [--parity K] < records.jsonl
    python -m gateway.conduits.run diode-receive HOST PORT --broker HOST:PORT [--duration S]
    python -m gateway.conduits.run courier-write DIR --key-file K --source S --state F [--per-bundle N] < records.jsonl
    python -m gateway.conduits.run courier-import DIR --key-file K --state F --broker HOST:PORT

Each prints one JSON summary line on stdout; the exit status is 0 only if nothing was lost
or rejected (2 = delivered but with reported loss/rejections, 1 = error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import asdict

from gateway.conduits.courier import CourierWriter, ImportReport, import_dir
from gateway.conduits.diode import DiodeSender, run_receiver
from gateway.conduits.mqtt_out import Republisher
from gateway.conduits.records import KeyError_, Record
from gateway.conduits.signing import keygen, load_mac_key, load_signing_key, load_verify_key


def _records_from(lines) -> list[Record]:  # noqa: ANN001
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            payload = d.pop("payload")
            out.append(Record(payload=payload.encode() if isinstance(payload, str) else json.dumps(payload).encode(), **d))
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"stdin line {n}: not a record ({e}); expected {{\"topic\": ..., \"payload\": ...}}")
    return out


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


async def diode_send(a: argparse.Namespace) -> int:
    key = load_mac_key(a.key_file) if a.key_file else None
    tx = await DiodeSender(a.host, a.port, copies=a.copies, parity_group=a.parity, heartbeat_s=a.heartbeat, key=key).start()
    for rec in _records_from(sys.stdin):
        tx.send(rec)
        await asyncio.sleep(a.interval)
    await tx.close()
    print(json.dumps(asdict(tx.stats)), flush=True)
    return 0 if not (tx.stats.oversize or tx.stats.send_errors) else 2


async def diode_receive(a: argparse.Namespace) -> int:
    pub = Republisher(*_hostport(a.broker))
    await pub.connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if a.duration:
        loop.call_later(a.duration, stop.set)
    else:
        loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read() or stop.set())  # EOF on stdin → stop
    print("ready", flush=True)
    rx = await run_receiver(a.host, a.port, pub.publish, status_topic=a.status_topic, gap_grace_s=a.grace, stop=stop,
                            key=load_mac_key(a.key_file) if a.key_file else None)
    await pub.drain()
    await pub.close()
    print(json.dumps(rx.status()), flush=True)
    return 0 if not rx.stats.lost else 2


def courier_write(a: argparse.Namespace) -> int:
    w = CourierWriter(a.dir, load_signing_key(a.key_file), a.source, a.state, max_records=a.per_bundle)
    paths = [p for rec in _records_from(sys.stdin) if (p := w.add(rec))]
    if last := w.flush():
        paths.append(last)
    print(json.dumps({"bundles": [p.name for p in paths], "last_seq": w.seq}), flush=True)
    return 0


async def courier_import(a: argparse.Namespace) -> int:
    pub = Republisher(*_hostport(a.broker))
    await pub.connect()
    rep = ImportReport()
    for bundle in import_dir(a.dir, load_verify_key(a.key_file), a.state, rep):
        for rec in bundle.records:
            await pub.publish(rec)
        if not await pub.drain():  # acknowledged before the bundle counts as imported
            raise SystemExit(f"broker {a.broker} did not acknowledge bundle {bundle.path.name}; import again later")
    await pub.close()
    print(rep.summary(), file=sys.stderr)
    print(json.dumps(asdict(rep)), flush=True)
    return 0 if rep.ok else 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gateway.conduits.run")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("diode-send")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--copies", type=int, default=1)
    s.add_argument("--parity", type=int, default=0)
    s.add_argument("--heartbeat", type=float, default=1.0)
    s.add_argument("--interval", type=float, default=0.005)
    s.add_argument("--key-file", default=None, help="shared secret (>= 32 bytes): tag every datagram (HMAC-SHA256)")
    r = sub.add_parser("diode-receive")
    r.add_argument("host")
    r.add_argument("port", type=int)
    r.add_argument("--broker", required=True)
    r.add_argument("--duration", type=float, default=0)
    r.add_argument("--grace", type=float, default=0.5)
    r.add_argument("--status-topic", default="gridgate/diode/status")
    r.add_argument("--key-file", default=None, help="the sender's shared secret: accept only datagrams tagged with it")
    w = sub.add_parser("courier-write")
    w.add_argument("dir")
    w.add_argument("--key-file", required=True, help="the field side's Ed25519 private key (PEM)")
    w.add_argument("--source", required=True)
    w.add_argument("--state", required=True)
    w.add_argument("--per-bundle", type=int, default=1000)
    i = sub.add_parser("courier-import")
    i.add_argument("dir")
    i.add_argument("--key-file", required=True, help="the field side's Ed25519 public key (PEM)")
    k = sub.add_parser("keygen", help="write a new Ed25519 key pair (private 0600, public for the control side)")
    k.add_argument("private")
    k.add_argument("public")
    i.add_argument("--state", required=True)
    i.add_argument("--broker", required=True)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "diode-send":
            return asyncio.run(diode_send(a))
        if a.cmd == "diode-receive":
            return asyncio.run(diode_receive(a))
        if a.cmd == "courier-write":
            return courier_write(a)
        if a.cmd == "keygen":
            keygen(a.private, a.public)
            print(json.dumps({"private": a.private, "public": a.public}), flush=True)
            return 0
        return asyncio.run(courier_import(a))
    except (KeyError_, ConnectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
