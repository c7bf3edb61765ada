"""Cost of authenticating diode datagrams, per datagram, for a typical CIM value record: the
HMAC-SHA256 tag the diode uses, against CRC only and against Ed25519 per datagram (why not). A few seconds.

    .venv/bin/python bench/bench_diode_auth.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import load_average  # noqa: E402
from gateway.conduits.diode import DATA, pack, unpack  # noqa: E402
from gateway.conduits.records import Record  # noqa: E402

N = 5000


def per_op(fn, n: int = N) -> float:  # noqa: ANN001
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    payload = json.dumps({"mRID": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "value": 231.42, "timeStamp": "2026-12-06T04:00:00.000Z",
                          "quality": {"validity": "GOOD", "source": "PROCESS"}, "seq": 123456}).encode()
    body = json.dumps(Record(topic="gridgate/v1/gw1/meas/0f1e2d3c", payload=payload).to_wire()).encode()
    mac = os.urandom(32)
    plain, tagged = pack(DATA, 0, 1, 1, body), pack(DATA, 0, 1, 1, body, key=mac)
    dg = plain
    sig = key.sign(dg)
    rows = {
        "pack crc only": per_op(lambda: pack(DATA, 0, 1, 1, body)),
        "pack + HMAC tag": per_op(lambda: pack(DATA, 0, 1, 1, body, key=mac)),
        "unpack crc only": per_op(lambda: unpack(plain)),
        "unpack + HMAC check": per_op(lambda: unpack(tagged, mac)),
        "Ed25519 sign (not used)": per_op(lambda: key.sign(dg), 1000),
        "Ed25519 verify (not used)": per_op(lambda: pub.verify(sig, dg), 1000),
    }
    print(f"datagram {len(plain)} bytes, tagged {len(tagged)} bytes (+{len(tagged) - len(plain)})")
    for k, v in rows.items():
        print(f"{k:26s} {v:8.1f} us/datagram  ({1e6 / v:9.0f} datagrams/s on one core)")
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
