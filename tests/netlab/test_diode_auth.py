"""Authenticated diode datagrams over real UDP on 127.0.0.1: a spoofer that knows the wire format
(but not the shared key) gets nothing delivered, and every spoofed datagram is counted."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket

import pytest

from gateway.conduits.diode import DATA, HEARTBEAT, SIGNED, DiodeReceiver, DiodeSender, pack, unpack
from gateway.conduits.records import Record

KEY = os.urandom(32)


async def test_spoofed_datagrams_are_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.conduits.diode")
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    rx = DiodeReceiver(lambda seq, rec: got.append(rec.payload), gap_grace_s=0.1, key=KEY)
    rt, _ = await loop.create_datagram_endpoint(lambda: rx, local_addr=("127.0.0.1", 0))
    host, port = rt.get_extra_info("sockname")
    tx = await DiodeSender(host, port, heartbeat_s=0.05, key=KEY).start()
    spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(1, 21):
            tx.send(Record(topic="t", payload=str(i).encode()))
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.2)
        session = tx.session
        body = json.dumps(Record(topic="t", payload=b"OPEN BREAKER").to_wire()).encode()
        spoofs = [
            pack(DATA, 0, session, 21, body),  # unsigned (version 1)
            pack(DATA, 0, session, 21, body, key=os.urandom(32)),  # tagged with another key
            pack(HEARTBEAT, 0, session, 500, b"{}"),  # a fake heartbeat claiming 480 lost records
        ]
        good = pack(DATA, 0, session, 21, body, key=KEY)
        tampered = good[:40] + bytes([good[40] ^ 1]) + good[41:]  # body changed after signing
        spoofs += [tampered, good[:-32] + bytes(32)]
        for _ in range(20):
            for dg in spoofs:
                spoof.sendto(dg, (host, port))
        await asyncio.sleep(0.3)
        for i in range(21, 31):
            tx.send(Record(topic="t", payload=str(i).encode()))
            await asyncio.sleep(0.002)
        await tx.close()
        await asyncio.sleep(0.3)
        rx.check()
    finally:
        spoof.close()
        rt.close()
    assert got == [str(i).encode() for i in range(1, 31)]
    assert rx.stats.unauthenticated == 100 and rx.stats.lost == 0 and rx.stats.records == 30
    assert len([r for r in caplog.records if "not authenticated" in r.getMessage()]) <= 2  # rate-limited
    assert unpack(good, KEY)[5] == body and good[4] == SIGNED


def test_mac_keys_are_read_byte_for_byte(tmp_path) -> None:  # noqa: ANN001
    from gateway.conduits.records import KeyError_
    from gateway.conduits.signing import load_mac_key

    raw = os.urandom(31) + b"\n"  # a binary key that happens to end in a newline
    (tmp_path / "k").write_bytes(raw)
    assert load_mac_key(tmp_path / "k") == raw
    (tmp_path / "short").write_bytes(b"secret\n")
    with pytest.raises(KeyError_, match="at least 32"):
        load_mac_key(tmp_path / "short")


def test_an_unsigned_sender_is_refused_by_a_keyed_receiver_and_accepted_by_a_keyless_one() -> None:
    body = json.dumps(Record(topic="t", payload=b"x").to_wire()).encode()
    keyed = DiodeReceiver(lambda seq, rec: None, key=KEY)
    keyed.datagram_received(pack(DATA, 0, 1, 1, body), ("127.0.0.1", 9))
    assert keyed.stats.unauthenticated == 1 and keyed.stats.records == 0
    keyless: list[int] = []
    open_rx = DiodeReceiver(lambda seq, rec: keyless.append(seq))
    open_rx.datagram_received(pack(DATA, 0, 1, 1, body, key=KEY), ("127.0.0.1", 9))
    assert keyless == [1]
