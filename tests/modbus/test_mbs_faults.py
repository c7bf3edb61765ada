"""Fault hooks: silent, delay, forced exceptions — consulted per request, swappable live."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from devices.modbus import ArrayDataModel, ForcedException, ModbusFaults, ModbusServer
from tests.modbus.mbs_raw import Raw, adu, req


async def test_silent_device_neither_answers_nor_executes(raw: Raw, server: ModbusServer, model: ArrayDataModel) -> None:
    server.faults = ModbusFaults(silent=True)
    await raw.send(adu(req(6, "HH", 3, 99), tid=1) + adu(req(3, "HH", 3, 1), tid=2))
    assert await raw.silent(0.3)
    assert model.get_register("holding", 3) == 1003
    assert (server.stats.requests, server.stats.silenced, server.stats.responses) == (2, 2, 0)
    server.faults = ModbusFaults()
    assert await raw.call(req(3, "HH", 3, 1), tid=3) == bytes((3, 2, 0x03, 0xEB))


async def test_delay_holds_every_reply(raw: Raw, server: ModbusServer) -> None:
    server.faults = ModbusFaults(delay_s=0.4)
    t0 = time.monotonic()
    await raw.send(adu(req(3, "HH", 0, 1), tid=1) + adu(req(3, "HH", 1, 1), tid=2))
    first = await raw.recv()
    elapsed = time.monotonic() - t0
    assert first[0] == 1 and (await raw.recv())[0] == 2
    assert 0.39 <= elapsed < 2.0
    server.faults = ModbusFaults()
    t0 = time.monotonic()
    await raw.call(req(3, "HH", 0, 1))
    assert time.monotonic() - t0 < 0.35  # well under the delay, with room for a loaded CI machine


async def test_delayed_reply_to_a_master_that_left_is_discarded(server: ModbusServer) -> None:
    server.faults = ModbusFaults(delay_s=0.1)
    c = await Raw.open(server.port)
    await c.send(adu(req(3, "HH", 0, 1)))
    await c.close()
    await asyncio.sleep(0.2)
    assert (server.stats.requests, server.stats.responses) == (1, 0)


async def test_forced_exception_for_function_and_range(raw: Raw, server: ModbusServer) -> None:
    server.faults = ModbusFaults(exceptions=(ForcedException(code=4, function=3, start=10, end=19),))
    assert await raw.call(req(3, "HH", 15, 1)) == bytes((0x83, 4))
    assert await raw.call(req(3, "HH", 5, 5)) == bytes((3, 10)) + b"".join((1000 + a).to_bytes(2, "big") for a in range(5, 10))
    assert await raw.call(req(3, "HH", 5, 6)) == bytes((0x83, 4))  # overlaps address 10
    assert await raw.call(req(4, "HH", 15, 1)) == bytes((4, 2)) + (2015).to_bytes(2, "big")  # other function
    assert await raw.call(req(3, "HH", 20, 1)) == bytes((3, 2)) + (1020).to_bytes(2, "big")
    assert server.stats.exceptions == {4: 2}


async def test_forced_exception_any_function_blocks_writes(raw: Raw, server: ModbusServer, model: ArrayDataModel) -> None:
    server.faults = ModbusFaults(exceptions=(ForcedException(code=6, start=0, end=0),))
    assert await raw.call(req(6, "HH", 0, 5)) == bytes((0x86, 6))
    assert await raw.call(req(5, "HH", 0, 0xFF00)) == bytes((0x85, 6))
    assert await raw.call(req(23, "HHHHB", 0, 1, 50, 1, 2, tail=b"\x00\x01")) == bytes((0x97, 6))  # read range hits
    assert model.get_register("holding", 0) == 1000 and model.get_register("holding", 50) == 1050
    # a malformed request is still answered 03, the script only applies to valid ones
    assert await raw.call(req(3, "HH", 0, 0)) == bytes((0x83, 3))


async def test_faults_combine_delay_and_exception(raw: Raw, server: ModbusServer) -> None:
    server.faults = ModbusFaults(delay_s=0.15, exceptions=(ForcedException(code=11),))
    t0 = time.monotonic()
    assert await raw.call(req(1, "HH", 0, 1)) == bytes((0x81, 11))
    assert time.monotonic() - t0 >= 0.14


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(code=9), "not a Modbus exception"),
        (dict(code=4, start=10, end=5), "before start"),
        (dict(code=4, function=0), "greater than or equal to 1"),
        (dict(code=4, fc=3), "Extra inputs"),
    ],
)
def test_bad_fault_spec_is_a_clear_error(bad: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ForcedException(**bad)


def test_faults_from_plain_data() -> None:
    f = ModbusFaults.model_validate({"delay_s": 0.5, "exceptions": [{"code": 4, "function": 16, "start": 100, "end": 110}]})
    assert not f.healthy and f.forced(16, 110, 120) == 4 and f.forced(16, 111, 120) is None and f.forced(3, 100, 100) is None
    assert ModbusFaults().healthy
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ModbusFaults(delay_s=-1)


async def test_faults_assigned_as_plain_data_are_validated(raw: Raw, server: ModbusServer) -> None:
    server.faults = {"exceptions": [{"code": 6, "function": 4}]}
    assert isinstance(server.faults, ModbusFaults)
    assert await raw.call(req(4, "HH", 0, 1)) == bytes((0x84, 6))
    with pytest.raises(ValidationError, match="silent"):
        server.faults = {"silent": "sometimes"}
    assert await raw.call(req(4, "HH", 0, 1)) == bytes((0x84, 6))  # the old faults stay
