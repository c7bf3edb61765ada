"""Decoding in all four word/byte orders and every type, checked against bytes packed
independently with struct, plus scaling, value maps and NaN/Inf handling."""

from __future__ import annotations

import math
import random
import struct

import pytest

from firmware_sim.registers import decoder
from gateway.site.quality import Q
from gateway.southbound.modbus.driver import converter
from tests.modbus.helpers import point

FMT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}
ORDERS = [("big", "big"), ("little", "big"), ("big", "little"), ("little", "little")]


def wire_registers(type_: str, value: float | int, word_order: str, byte_order: str) -> list[int]:
    """What a device with this layout puts on the wire, as 16-bit register values.

    Built from the big-endian bytes (ABCD) by plain slicing: word order swaps the 2-byte
    halves, byte order swaps the bytes inside each half.
    """
    raw = struct.pack(">" + FMT[type_], value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return [struct.unpack(">H", w)[0] for w in words]


def sample(rng: random.Random, type_: str) -> float | int:
    if type_ == "float32":
        return struct.unpack(">f", struct.pack(">f", rng.uniform(-1e6, 1e6)))[0]  # exactly representable
    lo, hi = {"int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}[type_]
    return rng.choice([lo, hi, 0, -1 if lo < 0 else 1, rng.randint(lo, hi)])


@pytest.mark.parametrize("word_order,byte_order", ORDERS)
@pytest.mark.parametrize("type_", list(FMT))
def test_decode_matches_struct(type_: str, word_order: str, byte_order: str) -> None:
    rng = random.Random(f"{type_}{word_order}{byte_order}")
    dec = decoder(type_, word_order, byte_order)
    for _ in range(200):
        v = sample(rng, type_)
        regs = [0xDEAD] + wire_registers(type_, v, word_order, byte_order) + [0xBEEF]
        assert dec(regs, 1) == v


def test_known_layouts_of_one_float() -> None:
    # 123.456 as float32 is 0x42F6E979: ABCD, CDAB, BADC, DCBA
    dec = lambda w, b, regs: decoder("float32", w, b)(regs, 0)  # noqa: E731
    v = struct.unpack(">f", bytes.fromhex("42F6E979"))[0]
    assert dec("big", "big", [0x42F6, 0xE979]) == v
    assert dec("little", "big", [0xE979, 0x42F6]) == v
    assert dec("big", "little", [0xF642, 0x79E9]) == v
    assert dec("little", "little", [0x79E9, 0xF642]) == v


def test_sixteen_bit_orders() -> None:
    assert decoder("int16", "big", "big")([0xFF85], 0) == -123
    assert decoder("int16", "big", "little")([0x85FF], 0) == -123
    assert decoder("uint16", "little", "little")([0x3412], 0) == 0x1234  # word order is moot for one word
    assert decoder("bool")([0, 1, 0], 1) == 1 and decoder("bool")([True], 0) == 1


def test_unknown_type_or_order_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown data type 'int64'"):
        decoder("int64")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'big' or 'little'"):
        decoder("int32", "middle", "big")  # type: ignore[arg-type]


def test_scaling_and_offset_give_floats_for_analogs() -> None:
    conv = converter(point("v", "holding", 0, "int16", scale=0.1, offset=-5))
    value, q = conv(-123)
    assert q == 0 and isinstance(value, float) and value == pytest.approx(-17.3)


def test_accumulators_stay_integers_unless_scaled() -> None:
    assert converter(point("e", "holding", 0, "uint32", "Accumulator"))(4_000_000_000) == (4_000_000_000, 0)
    assert converter(point("e", "holding", 0, "uint32", "Accumulator", scale=1000))(42) == (42000.0, 0)


def test_discretes_map_codes_and_flag_unknown_raw_values() -> None:
    breaker = converter(point("cb", "discrete_input", 0, "bool", "Discrete", value_map={0: 1, 1: 2}))
    assert breaker(0) == (1, 0) and breaker(1) == (2, 0)
    tap = converter(point("tap", "holding", 0, "uint16", "Discrete", value_map={1: 10, 2: 20}))
    assert tap(2) == (20, 0)
    assert tap(7) == (7, int(Q.INVALID | Q.OUT_OF_RANGE))  # seen, not dropped
    plain = converter(point("c", "coil", 0, "bool", "Discrete"))
    assert plain(True) == (1, 0) and type(plain(True)[0]) is int


@pytest.mark.parametrize("bits", [0x7FC00000, 0x7F800000, 0xFF800000])  # NaN, +Inf, -Inf
def test_nan_and_inf_are_invalid_overflow(bits: int) -> None:
    regs = [bits >> 16, bits & 0xFFFF]
    raw = decoder("float32")(regs, 0)
    assert not math.isfinite(raw)
    assert converter(point("f", "holding", 0, "float32"))(raw) == (None, int(Q.INVALID | Q.OVERFLOW))


def test_reader_is_decode_then_convert_for_every_type_order_and_kind() -> None:
    """The poll loop's one-call ``reader`` gives what decoder + converter give (value and quality), including the
    uint16 fast path, scaling, value maps, accumulators and NaN/Inf."""
    from gateway.southbound.modbus.driver import reader

    rng = random.Random(18)
    regs = [rng.randrange(0x10000) for _ in range(64)] + [0x7FC0, 0, 0x7F80, 0, 0xFFFF, 0x8000, 0, 1]
    cases = [point("b", "coil", 0, "bool", "Discrete"), point("b", "coil", 0, "bool", "Discrete", value_map={0: 1, 1: 2})]
    for type_ in FMT:
        for wo, bo in ORDERS:
            for kind in ("Analog", "Discrete", "Accumulator"):
                for kw in ({}, {"scale": 0.1}, {"scale": 0.01, "offset": -5}):
                    cases.append(point("p", "holding", 0, type_, kind, word_order=wo, byte_order=bo, **kw))
            cases.append(point("m", "holding", 0, type_, "Discrete", word_order=wo, byte_order=bo, value_map={1: 10, 513: 20}))
    def outcome(f, *a):  # noqa: ANN001, ANN202 - a float32 NaN/Inf read as a Discrete raises in both alike
        try:
            v = f(*a)
            return v, type(v[0])
        except (ValueError, OverflowError) as e:
            return str(e), type(e)

    for p in cases:
        read, dec, conv = reader(p), decoder(p.type, p.word_order, p.byte_order), converter(p)
        for i in range(len(regs) - 1):
            got, want = outcome(read, regs, i), outcome(lambda: conv(dec(regs, i)))
            assert repr(got) == repr(want), (p.type, p.measurement.kind, p.word_order, p.byte_order, i)
    assert sum(1 for p in cases if p.type == "uint16" and p.measurement.kind == "Analog") >= 6


def test_register_replies_decode_as_pymodbus_does() -> None:
    """The one-call FC3/FC4 reply decoding (replies.py) gives pymodbus' registers, or its error, for every byte
    count (exact, odd, beyond the packet) and lengths up to a full 125-register reply."""
    from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

    from gateway.southbound.modbus.replies import HoldingRegisters, InputRegisters

    rng = random.Random(18)
    for ours, theirs in ((HoldingRegisters, ReadHoldingRegistersResponse), (InputRegisters, ReadInputRegistersResponse)):
        assert ours.function_code == theirs.function_code
        for n in range(256):
            body = bytes(rng.randrange(256) for _ in range(n))
            for count in {n, max(n - 1, 0), n + 1, rng.randrange(256)}:
                data = bytes([count & 0xFF]) + body
                got, want = [], []
                for cls, into in ((ours, got), (theirs, want)):
                    try:
                        pdu = cls()
                        pdu.decode(data)
                        into.append(pdu.registers)
                    except Exception as e:  # noqa: BLE001 - the same error class is part of the contract
                        into.append((type(e), str(e)))
                assert got == want, (n, count)
        pdu = ours()
        pdu.decode(bytes([250]) + bytes(range(250)))
        assert len(pdu.registers) == 125 and pdu.registers[:2] == [0x0001, 0x0203] and "registers=<125>" in str(pdu)
