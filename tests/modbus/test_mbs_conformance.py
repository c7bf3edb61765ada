"""Modbus Application Protocol conformance of the emulated device, with raw frames.

Check order per the spec's state diagrams: function (01) → quantity / byte count (03) →
address range (02) → execution. Table sizes: coil/discrete 2005, holding 200, input 50.
"""

from __future__ import annotations

import struct

import pytest

from devices.modbus import ArrayDataModel, ModbusServer
from tests.modbus.mbs_raw import SIZES, Raw, adu, req


def exc(fc: int, code: int) -> bytes:
    return bytes((0x80 | fc, code))


# ---------------------------------------------------------------- reads


async def test_fc1_read_coils_packs_lsb_first(raw: Raw) -> None:
    # coils 0..9 = 1,0,1,1,0,0,0,1,1,1 → first byte 0b10001101, second 0b00000011
    assert await raw.call(req(1, "HH", 0, 10)) == bytes((1, 2, 0x8D, 0x03))
    # from an odd start the bits shift: coils 3..10 = 1,0,0,0,1,1,1,0
    assert await raw.call(req(1, "HH", 3, 8)) == bytes((1, 1, 0x71))


async def test_fc2_read_discrete_inputs(raw: Raw) -> None:
    # inputs 0..10 = 0,1,0,0,1,1,1,0,0,0,1
    assert await raw.call(req(2, "HH", 0, 11)) == bytes((2, 2, 0x72, 0x04))


async def test_fc3_fc4_read_registers(raw: Raw) -> None:
    assert await raw.call(req(3, "HH", 10, 3)) == bytes((3, 6)) + struct.pack(">3H", 1010, 1011, 1012)
    assert await raw.call(req(4, "HH", 49, 1)) == bytes((4, 2)) + struct.pack(">H", 2049)


async def test_read_limits_are_inclusive(raw: Raw) -> None:
    resp = await raw.call(req(3, "HH", 0, 125))
    assert resp[:2] == bytes((3, 250)) and struct.unpack(">125H", resp[2:]) == tuple(1000 + a for a in range(125))
    resp = await raw.call(req(1, "HH", 0, 2000))
    assert resp[:2] == bytes((1, 250)) and len(resp) == 252
    resp = await raw.call(req(2, "HH", 5, 2000))  # ends at the last discrete input, 2004
    assert resp[:2] == bytes((2, 250))


@pytest.mark.parametrize(
    "fc,start,qty",
    [(3, 0, 0), (3, 0, 126), (4, 0, 0), (4, 0, 126), (1, 0, 0), (1, 0, 2001), (2, 0, 0), (2, 0, 2001)],
)
async def test_read_quantity_out_of_range_is_03(raw: Raw, fc: int, start: int, qty: int) -> None:
    assert await raw.call(req(fc, "HH", start, qty)) == exc(fc, 3)


@pytest.mark.parametrize(
    "fc,start,qty",
    [
        (3, 199, 2), (3, 200, 1), (3, 65535, 1), (4, 50, 1), (4, 40, 11),
        (1, 2000, 6), (1, 2005, 1), (2, 2004, 2), (2, 65535, 1),
    ],
)
async def test_read_beyond_image_is_02(raw: Raw, fc: int, start: int, qty: int) -> None:
    assert await raw.call(req(fc, "HH", start, qty)) == exc(fc, 2)


async def test_bit_tables_are_bounded_per_bit_not_per_word(raw: Raw) -> None:
    """2005 coils: 2000..2004 exist, 2005..2015 (same 16-bit word) do not."""
    assert (await raw.call(req(1, "HH", 2000, 5)))[:2] == bytes((1, 1))
    assert await raw.call(req(1, "HH", 2000, 6)) == exc(1, 2)
    assert await raw.call(req(5, "HH", 2005, 0xFF00)) == exc(5, 2)
    assert await raw.call(req(15, "HHB", 2004, 2, 1, tail=b"\x03")) == exc(15, 2)


async def test_quantity_is_checked_before_address(raw: Raw) -> None:
    assert await raw.call(req(3, "HH", 65000, 200)) == exc(3, 3)


# ---------------------------------------------------------------- writes


async def test_fc5_write_single_coil(raw: Raw, model: ArrayDataModel) -> None:
    assert await raw.call(req(5, "HH", 1, 0xFF00)) == req(5, "HH", 1, 0xFF00)
    assert model.get_bit("coil", 1) is True
    assert await raw.call(req(5, "HH", 0, 0x0000)) == req(5, "HH", 0, 0x0000)
    assert model.get_bit("coil", 0) is False
    assert model.get_bit("discrete_input", 1) is True  # FC5 never touches discrete inputs


@pytest.mark.parametrize("value", [0x0001, 0x00FF, 0xFFFF, 0x1234, 0xFF01])
async def test_fc5_value_other_than_ff00_or_0000_is_03(raw: Raw, model: ArrayDataModel, value: int) -> None:
    assert await raw.call(req(5, "HH", 2, value)) == exc(5, 3)
    assert model.get_bit("coil", 2) is True  # unchanged


async def test_fc6_writes_holding_only(raw: Raw, model: ArrayDataModel) -> None:
    assert await raw.call(req(6, "HH", 10, 0xBEEF)) == req(6, "HH", 10, 0xBEEF)
    assert model.get_register("holding", 10) == 0xBEEF
    assert model.get_register("input", 10) == 2010
    assert await raw.call(req(6, "HH", 200, 1)) == exc(6, 2)


async def test_fc15_write_multiple_coils(raw: Raw, model: ArrayDataModel) -> None:
    # 10 coils from 100: 1,0,1,0,0,0,0,1 | 1,1
    assert await raw.call(req(15, "HHB", 100, 10, 2, tail=bytes((0x85, 0x03)))) == req(15, "HH", 100, 10)
    assert [model.get_bit("coil", a) for a in range(100, 111)] == [True, False, True, False, False, False, False, True, True, True, False]
    resp = await raw.call(req(15, "HHB", 0, 1968, 246, tail=b"\xff" * 246))
    assert resp == req(15, "HH", 0, 1968) and all(model.get_bit("coil", a) for a in range(1968))


@pytest.mark.parametrize(
    "qty,bc,data",
    [(0, 0, b""), (1969, 247, b"\xff" * 247), (10, 1, b"\x01"), (10, 3, b"\x01\x02\x03"), (8, 2, b"\x01\x02")],
)
async def test_fc15_bad_quantity_or_byte_count_is_03(raw: Raw, model: ArrayDataModel, qty: int, bc: int, data: bytes) -> None:
    before = model.read_bits("coil", 0, 2005)
    assert await raw.call(req(15, "HHB", 0, qty, bc, tail=data)) == exc(15, 3)
    assert model.read_bits("coil", 0, 2005) == before


async def test_fc16_write_multiple_registers(raw: Raw, model: ArrayDataModel) -> None:
    regs = struct.pack(">3H", 7, 8, 9)
    assert await raw.call(req(16, "HHB", 20, 3, 6, tail=regs)) == req(16, "HH", 20, 3)
    assert [model.get_register("holding", a) for a in (19, 20, 21, 22, 23)] == [1019, 7, 8, 9, 1023]
    resp = await raw.call(req(16, "HHB", 0, 123, 246, tail=b"\x00\x01" * 123))
    assert resp == req(16, "HH", 0, 123)


@pytest.mark.parametrize(
    "qty,bc,data",
    [
        (0, 0, b""),
        (124, 248, b"\x00" * 247),  # all 248 bytes would not fit in one ADU
        (2, 2, b"\x00\x01"),
        (2, 4, b"\x00\x01\x00"),
        (1, 2, b"\x00\x01\x00\x02"),
    ],
)
async def test_fc16_bad_quantity_or_byte_count_is_03(raw: Raw, model: ArrayDataModel, qty: int, bc: int, data: bytes) -> None:
    assert await raw.call(req(16, "HHB", 30, qty, bc, tail=data)) == exc(16, 3)
    assert model.get_register("holding", 30) == 1030


async def test_fc16_beyond_image_is_02(raw: Raw, model: ArrayDataModel) -> None:
    assert await raw.call(req(16, "HHB", 199, 2, 4, tail=b"\x00\x01\x00\x02")) == exc(16, 2)
    assert model.get_register("holding", 199) == 1199


async def test_fc23_writes_before_reading(raw: Raw, model: ArrayDataModel) -> None:
    resp = await raw.call(req(23, "HHHHB", 40, 4, 41, 2, 4, tail=struct.pack(">2H", 77, 88)))
    assert resp == bytes((23, 8)) + struct.pack(">4H", 1040, 77, 88, 1043)
    assert model.get_register("holding", 42) == 88


async def test_fc23_limits(raw: Raw) -> None:
    ok = await raw.call(req(23, "HHHHB", 0, 125, 0, 121, 242, tail=b"\x00\x05" * 121))
    assert ok[:2] == bytes((23, 250)) and ok[2:4] == b"\x00\x05"
    assert await raw.call(req(23, "HHHHB", 0, 126, 0, 1, 2, tail=b"\x00\x01")) == exc(23, 3)
    assert await raw.call(req(23, "HHHHB", 0, 1, 0, 122, 244, tail=b"\x00" * 243)) == exc(23, 3)
    assert await raw.call(req(23, "HHHHB", 0, 0, 0, 1, 2, tail=b"\x00\x01")) == exc(23, 3)
    assert await raw.call(req(23, "HHHHB", 0, 1, 0, 0, 0)) == exc(23, 3)
    assert await raw.call(req(23, "HHHHB", 0, 1, 0, 2, 2, tail=b"\x00\x01")) == exc(23, 3)  # byte count
    assert await raw.call(req(23, "HHHHB", 199, 2, 0, 1, 2, tail=b"\x00\x01")) == exc(23, 2)  # read range
    assert await raw.call(req(23, "HHHHB", 0, 1, 199, 2, 4, tail=b"\x00\x01\x00\x01")) == exc(23, 2)  # write range


# ---------------------------------------------------------------- function codes, PDU shape


@pytest.mark.parametrize("fc", [0, 7, 8, 11, 17, 20, 22, 24, 43, 0x41, 0x7F])
async def test_unknown_function_is_01(raw: Raw, fc: int) -> None:
    assert await raw.call(bytes((fc, 0, 0, 0, 1))) == exc(fc, 1)


@pytest.mark.parametrize(
    "pdu",
    [
        bytes((3, 0, 0, 0)),  # short
        bytes((3, 0, 0, 0, 1, 0)),  # trailing byte
        bytes((1,)),
        bytes((5, 0, 1, 0xFF)),
        bytes((6, 0, 1, 0, 1, 9)),
        bytes((16, 0, 0, 0, 2, 4, 0, 1, 0)),  # data shorter than the byte count says
        bytes((23, 0, 0, 0, 1, 0, 0)),
    ],
)
async def test_pdu_of_wrong_length_is_03_and_counted(raw: Raw, server: ModbusServer, pdu: bytes) -> None:
    assert await raw.call(pdu) == exc(pdu[0], 3)
    assert server.stats.malformed == {"pdu_length": 1}
    assert server.stats.exceptions == {3: 1}


async def test_exceptions_are_counted_by_code(raw: Raw, server: ModbusServer) -> None:
    await raw.call(req(3, "HH", 0, 0))
    await raw.call(req(3, "HH", 300, 1))
    await raw.call(req(3, "HH", 300, 1))
    await raw.call(bytes((8, 0, 0, 0, 0)))
    await raw.call(req(3, "HH", 0, 1))
    st = server.stats
    assert (st.requests, st.responses, st.exceptions, st.malformed) == (5, 5, {1: 1, 2: 2, 3: 1}, {})


async def test_model_failure_is_04_and_server_keeps_serving() -> None:
    class Broken(ArrayDataModel):
        def write_registers(self, start: int, data: bytes) -> None:
            raise OSError("image locked by firmware")

    s = ModbusServer(Broken(**SIZES))
    async with s:
        c = await Raw.open(s.port)
        assert await c.call(req(6, "HH", 1, 5)) == exc(6, 4)
        assert await c.call(req(3, "HH", 1, 1)) == bytes((3, 2, 0, 0))
        await c.close()
        assert s.stats.exceptions == {4: 1}


async def test_random_pdus_always_get_a_well_formed_answer(raw: Raw, server: ModbusServer) -> None:
    """Fuzz: any PDU in a valid MBAP frame gets exactly one answer, normal or exception, never a crash."""
    import random

    rnd = random.Random(61850)
    pdus = []
    for _ in range(1500):
        fc = rnd.choice([1, 2, 3, 4, 5, 6, 15, 16, 23, rnd.randrange(256)])
        pdus.append(bytes((fc,)) + rnd.randbytes(rnd.choice([0, 1, 3, 4, 5, 8, 9, rnd.randrange(253)])))
    await raw.send(b"".join(adu(p, tid=k) for k, p in enumerate(pdus)))
    for k, p in enumerate(pdus):
        tid, pid, unit, resp = await raw.recv()
        assert (tid, pid, unit) == (k, 0, 1)
        if resp[0] & 0x80:
            assert resp[0] == p[0] | 0x80 and len(resp) == 2 and resp[1] in (1, 2, 3), (p.hex(), resp.hex())
        else:
            assert resp[0] == p[0] and p[0] in (1, 2, 3, 4, 5, 6, 15, 16, 23), (p.hex(), resp.hex())
    st = server.stats
    assert st.requests == st.responses == len(pdus)
    assert sum(st.exceptions.values()) > 1000  # random bytes are mostly invalid
