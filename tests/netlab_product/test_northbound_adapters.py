"""The conduit adapters behind GatewayOptions.northbound, without a lab: a real DiodeSender →
DiodeReceiver over loopback UDP and a real CourierWriter → read_bundle round trip. Birth is
sent once at start, the final (offline) message at stop, refusals are counted by reason."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.conduits.courier import read_bundle
from gateway.conduits.diode import MAX_BODY, DiodeReceiver
from gateway.conduits.northbound import CourierNorthbound, DiodeNorthbound
from gateway.northbound.message import Message


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_diode_adapter_carries_birth_values_and_final_and_counts_refusals() -> None:
    got: list[tuple[int, str, bytes, bool]] = []
    rx = DiodeReceiver(lambda seq, rec: got.append((seq, rec.topic, rec.payload, rec.retain)), gap_grace_s=0.2)
    port = _free_udp_port()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: rx, local_addr=("127.0.0.1", port))
    births: list[int] = []
    nb = DiodeNorthbound("127.0.0.1", port, copies=2, parity_group=4, heartbeat_s=0.1,
                         birth=lambda: births.append(1) or nb.publish("gw/status", b'{"state":"online"}', 1, True))
    try:
        assert nb.publish("gw/meas/x", b"1") is False and nb.stats.dropped["conduit_closed"] == 1  # not started yet
        await nb.start()
        assert nb.connected and births == [1]
        for i in range(20):
            assert nb.publish(f"gw/meas/{i}", json.dumps({"v": i}).encode(), qos=0)
        assert nb.publish("gw/meas/huge", b"x" * (MAX_BODY + 1)) is False
        await nb.stop(final=Message("gw/status", b'{"state":"offline"}', qos=1, retain=True))
        await asyncio.sleep(0.3)
        rx.check(force=True)
    finally:
        transport.close()
    assert not nb.connected
    st = nb.stats
    assert st.published == 22 and st.dropped == {"conduit_closed": 1, "oversize": 1}
    assert [t for _, t, _, _ in got] == ["gw/status", *(f"gw/meas/{i}" for i in range(20)), "gw/status"]
    assert [s for s, *_ in got] == list(range(1, 23)) and rx.stats.lost == 0 and rx.stats.duplicates == 22
    assert got[0][3] is True and got[-1][2] == b'{"state":"offline"}' and got[-1][3] is True


async def test_courier_adapter_writes_periodic_bundles_and_flushes_on_stop(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    nb = CourierNorthbound(tmp_path / "t", key, "gw1", tmp_path / "state.json", flush_s=0.2, max_records=50)
    await nb.start()
    for i in range(120):  # 2 full bundles by size, the rest by time / at stop
        nb.publish(f"gw/meas/{i}", str(i).encode(), qos=0, retain=False)
    await asyncio.sleep(0.35)
    assert nb.stats.queued == 0  # the timer flushed the remainder
    nb.publish("gw/meas/late", b"late")
    assert nb.stats.queued == 1
    await nb.stop(final=Message("gw/status", b"offline", qos=1, retain=True))
    names = sorted(p.name for p in (tmp_path / "t").glob("*.ggb"))
    assert names == [f"gw1-{i:010d}.ggb" for i in range(1, 5)]
    recs = [r for n in names for r in read_bundle(tmp_path / "t" / n, pub)[1]]
    assert [r.topic for r in recs] == [*(f"gw/meas/{i}" for i in range(120)), "gw/meas/late", "gw/status"]
    assert recs[-1].retain is True and recs[-1].qos == 1 and nb.stats.published == 122 and not nb.stats.dropped
    # a restarted gateway continues the sequence and the hash chain from its state file
    nb2 = CourierNorthbound(tmp_path / "t", key, "gw1", tmp_path / "state.json", flush_s=10)
    await nb2.start()
    nb2.publish("gw/meas/again", b"1")
    await nb2.stop()
    m5, _ = read_bundle(tmp_path / "t" / "gw1-0000000005.ggb", pub)
    m4, _ = read_bundle(tmp_path / "t" / "gw1-0000000004.ggb", pub)
    assert m5.prev_sha256 == m4.body_sha256
