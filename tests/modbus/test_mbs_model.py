"""ArrayDataModel and the bit packing helpers."""

from __future__ import annotations

import random

import pytest

from devices.modbus import ArrayDataModel, ModbusDataModel
from devices.modbus.pdu import pack_bits, unpack_bits


def test_array_model_satisfies_the_protocol() -> None:
    assert isinstance(ArrayDataModel(), ModbusDataModel)


def test_sizes_and_round_trips() -> None:
    m = ArrayDataModel(coil=10, discrete_input=3, holding=5, input=4)
    assert [m.size(t) for t in ("coil", "discrete_input", "holding", "input")] == [10, 3, 5, 4]
    m.write_registers(1, b"\x12\x34\xab\xcd")
    assert m.read_registers("holding", 0, 3) == b"\x00\x00\x12\x34\xab\xcd"
    assert m.get_register("holding", 2) == 0xABCD
    m.set_register("input", 3, -1)
    assert m.get_register("input", 3) == 0xFFFF
    m.write_bits(8, b"\x01\x01")
    m.set_bits("discrete_input", 0, [True, False, 5])
    assert m.read_bits("coil", 7, 3) == b"\x00\x01\x01"
    assert m.read_bits("discrete_input", 0, 3) == b"\x01\x00\x01"
    assert m.writes == 2  # only writes from the wire count


def test_value_source_writes_out_of_range_are_clear_errors() -> None:
    m = ArrayDataModel(holding=5, coil=2)
    with pytest.raises(IndexError, match=r"holding:4\+2 lies beyond the holding table \(size 5\)"):
        m.set_registers("holding", 4, b"\x00\x01\x00\x02")
    with pytest.raises(ValueError, match="odd length"):
        m.set_registers("holding", 0, b"\x00")
    with pytest.raises(IndexError, match="coil"):
        m.set_bits("coil", 1, [1, 1])
    with pytest.raises(ValueError, match="0..65536"):
        ArrayDataModel(holding=70000)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 17, 1968, 2000])
def test_pack_unpack_bits_round_trip(n: int) -> None:
    rnd = random.Random(n)
    bits = bytes(rnd.choice((0, 1)) for _ in range(n))
    packed = pack_bits(bits)
    assert len(packed) == (n + 7) // 8
    # the reference encoding: bit i lives in byte i//8 at position i%8
    ref = bytearray((n + 7) // 8)
    for i, b in enumerate(bits):
        ref[i // 8] |= b << (i % 8)
    assert packed == bytes(ref)
    assert unpack_bits(packed, n) == bits


def test_pack_treats_any_nonzero_byte_as_set() -> None:
    assert pack_bits(b"\x00\x02\xff") == b"\x06"
