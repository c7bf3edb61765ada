"""One master at a time, as real outstations: a second connection does not steal the
gateway's association (unless configured to), a silent master is closed after the idle
timeout, and the link drops frames from a station other than the configured master."""

from __future__ import annotations

import asyncio

from gateway.protocols.dnp3.link import LinkChannel
from tests.dnp3.conftest import outstation
from tests.dnp3.peer import device
from tests.dnp3.test_malformed import integrity_ok, raw_master, response

POINTS = [{"name": "P", "group": "analog", "index": 0}]


async def _closed(ch: LinkChannel, timeout: float = 5.0) -> bool:
    try:
        async with asyncio.timeout(timeout):
            while await ch.reader.read(4096):
                pass
        return True
    except (TimeoutError, ConnectionError):
        return False


def _dev(**dnp3):  # noqa: ANN202
    return device(POINTS, **dnp3)


async def test_second_connection_is_refused_while_the_master_is_active() -> None:
    async with outstation(_dev()) as os_, raw_master(os_.port) as a:
        os_.update("P", 7.0, 0, 1_700_000_000)
        await integrity_ok(a, 0)
        for k in range(3):
            async with raw_master(os_.port) as b:
                assert await _closed(b)
            await integrity_ok(a, k + 1)  # the gateway's association is untouched
        assert os_.stats["guard"]["refused"] == 3 and os_.counters["connections"] == 1
        assert os_.counters["keepalive_probes"] == 3  # the live master answered each and kept its association


async def test_a_master_whose_connection_was_reset_gets_back_in() -> None:
    """A rebooted master host resets its old connection (to the probe sent on contention, or to
    anything): the association ends and the master's next attempt is served, not refused.
    (A truly silent half-open peer cannot be made on loopback; the idle timeout covers that.)"""
    import socket
    import struct

    async with outstation(_dev()) as os_:
        dead = socket.create_connection(("127.0.0.1", os_.port))
        for _ in range(100):
            if os_._session is not None:
                break
            await asyncio.sleep(0.02)
        dead.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        dead.close()  # RST: what a rebooted master host answers to the probe on its old connection
        async with raw_master(os_.port) as b:
            await _closed(b, timeout=2)  # refused (or served) while the outstation finds out
        for _ in range(100):
            if os_._session is None:
                break
            await asyncio.sleep(0.02)
        async with raw_master(os_.port) as c:
            await integrity_ok(c, 0)


async def test_replace_policy_lets_the_newcomer_take_over() -> None:
    async with outstation(_dev(second_master="replace")) as os_, raw_master(os_.port) as a:
        await integrity_ok(a, 0)
        async with raw_master(os_.port) as b:
            await integrity_ok(b, 0)
            assert await _closed(a)
        assert os_.counters["connections"] == 2 and os_.stats["guard"]["evicted"] == 1


async def test_silent_master_is_closed_after_the_idle_timeout_and_a_new_one_gets_in() -> None:
    dev = _dev().model_copy(update={"connections": _dev().connections.model_copy(update={"idle_timeout": 0.5})})
    async with outstation(dev) as os_:
        async with raw_master(os_.port) as a:
            assert await _closed(a)
        assert os_.stats["guard"]["idle_closed"] == 1
        async with raw_master(os_.port) as b:
            await integrity_ok(b, 0)


async def test_frames_from_a_wrong_source_address_are_dropped_and_counted() -> None:
    async with outstation(_dev()) as os_:
        r, w = await asyncio.open_connection("127.0.0.1", os_.port)
        rogue = LinkChannel(r, w, local=7, remote=10, is_master=True)  # master address 7, outstation expects 1
        try:
            from gateway.protocols.dnp3 import objects as o

            rogue.send(o.request(0, o.READ, o.class_reads((0,))))
            try:
                await response(rogue, timeout=1.0)
                answered = True
            except TimeoutError:
                answered = False
            assert not answered
            assert os_.link_stats.wrong_source >= 1
        finally:
            await rogue.close()
