"""Diode protocol over real UDP sockets on 127.0.0.1 (no lab needed): a relay in between
drops chosen datagrams, so loss accounting and FEC are checked exactly and quickly."""

from __future__ import annotations

import asyncio

from gateway.conduits.diode import DATA, PARITY, DiodeReceiver, DiodeSender, unpack
from gateway.conduits.records import Record


class Relay(asyncio.DatagramProtocol):
    """Forwards datagrams to ``dst`` except those ``drop(kind, aux, seq)`` selects."""

    def __init__(self, dst: tuple[str, int], drop) -> None:  # noqa: ANN001
        self.dst, self.drop, self.dropped = dst, drop, 0

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.t = transport

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        kind, aux, _s, seq, _t, _b = unpack(data)
        if self.drop(kind, aux, seq):
            self.dropped += 1
        else:
            self.t.sendto(data, self.dst)


async def _exchange(n: int, drop, copies: int = 1, parity: int = 0) -> tuple[DiodeReceiver, list[int], Relay]:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    got: list[int] = []
    gaps: list[tuple[int, int]] = []
    rx = DiodeReceiver(lambda seq, rec: got.append(int(rec.payload)), on_gap=lambda a, b: gaps.append((a, b)), gap_grace_s=0.1)
    rt, _ = await loop.create_datagram_endpoint(lambda: rx, local_addr=("127.0.0.1", 0))
    relay = Relay(rt.get_extra_info("sockname"), drop)
    lt, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
    tx = await DiodeSender(*lt.get_extra_info("sockname"), copies=copies, parity_group=parity, heartbeat_s=0.05).start()
    try:
        for i in range(1, n + 1):
            tx.send(Record(topic="t", payload=str(i).encode()))
            await asyncio.sleep(0.001)
        await tx.close()
        await asyncio.sleep(0.3)
        rx.check()
    finally:
        lt.close()
        rt.close()
    assert [tuple(g) for g in rx.stats.gaps] == gaps
    return rx, got, relay


async def test_gaps_are_exact_and_in_order() -> None:
    rx, got, relay = await asyncio.wait_for(_exchange(50, lambda k, a, s: k == DATA and s in {3, 4, 30, 50}), 10)
    assert relay.dropped == 4
    assert got == [i for i in range(1, 51) if i not in {3, 4, 30, 50}]
    assert rx.stats.gaps == [(3, 4), (30, 30), (50, 50)] and rx.stats.lost == 4 and rx.stats.records == 46


async def test_parity_recovers_one_per_group_but_not_two() -> None:
    rx, got, _ = await asyncio.wait_for(_exchange(24, lambda k, a, s: k == DATA and s in {2, 7, 8, 24}, parity=4), 10)
    # groups 1-4 (lost 2: recovered), 5-8 (lost 7 and 8: cannot), 21-24 (lost 24: recovered)
    assert rx.stats.recovered == 2 and rx.stats.lost == 2 and rx.stats.gaps == [(7, 8)]
    assert sorted(got) == [i for i in range(1, 25) if i not in {7, 8}]


async def test_lost_parity_costs_nothing_and_copies_cover_first_copy_loss() -> None:
    rx, got, _ = await asyncio.wait_for(_exchange(12, lambda k, a, s: k == PARITY, parity=4), 10)
    assert got == list(range(1, 13)) and rx.stats.lost == 0
    rx2, got2, relay = await asyncio.wait_for(_exchange(20, lambda k, a, s: k == DATA and a == 0 and s % 2 == 0, copies=3), 10)
    assert relay.dropped == 10 and sorted(got2) == list(range(1, 21)) and rx2.stats.lost == 0
    assert rx2.stats.duplicates == 20 * 2 - 10


async def test_silent_link_is_flagged() -> None:
    rx = DiodeReceiver(lambda s, r: None, silence_s=0.05)
    await asyncio.sleep(0.1)
    rx.check()
    assert rx.stats.silent is True
