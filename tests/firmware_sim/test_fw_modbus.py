"""Register images in all four word/byte orders, and the Modbus data model's reads and writes."""

from __future__ import annotations

import struct

import pytest

from firmware_sim import Firmware, ReadOnlyPoint
from tests.firmware_sim.fwcases import T0, sp

ORDERS = {("big", "big"): "ABCD", ("little", "big"): "CDAB", ("big", "little"): "BADC", ("little", "little"): "DCBA"}


def _arrange(abcd: bytes, pattern: str) -> bytes:
    return bytes(abcd["ABCD".index(ch)] for ch in pattern)


@pytest.mark.parametrize("words,bytes_", list(ORDERS))
def test_32bit_register_orders(backend_name, words, bytes_):
    pattern = ORDERS[(words, bytes_)]
    reg = dict(word_order=words, byte_order=bytes_)
    pts = [
        sp("f", {"kind": "constant", "value": 123.456}, register={"table": "input", "address": 0, "type": "float32", **reg}),
        sp("i", {"kind": "constant", "value": -123456.7}, register={"table": "input", "address": 2, "type": "int32", **reg}),
        sp("u", {"kind": "constant", "value": 0x123456 * 0.5}, register={"table": "holding", "address": 10, "type": "uint32", "scale": 0.5, **reg}),
        sp("h", {"kind": "constant", "value": 4660.0}, register={"table": "input", "address": 4, "type": "uint16", **reg}),
    ]
    fw = Firmware(pts, backend=backend_name)
    mb = fw.modbus("rtu1")
    assert mb.read_registers("input", 0, 5) == b"\0" * 10  # nothing before the first tick
    fw.tick(T0)
    assert mb.read_registers("input", 0, 2) == _arrange(struct.pack(">f", 123.456), pattern)
    assert mb.read_registers("input", 2, 2) == _arrange(struct.pack(">i", -123457), pattern)
    assert mb.read_registers("holding", 10, 2) == _arrange(bytes.fromhex("00123456"), pattern)  # values are float32: 24 bits
    assert mb.read_registers("input", 4, 1) == (b"\x12\x34" if bytes_ == "big" else b"\x34\x12")
    assert mb.size("holding") == 12 and mb.size("input") == 5 and mb.size("coil") == 0
    assert mb.read_registers("holding", 0, 10) == b"\0" * 20  # unmapped addresses read 0
    assert [fw.quality(i) for i in range(fw.size)] == [0] * 4


def test_integer_saturation_flags_overflow(backend_name):
    pts = [sp("a", {"kind": "constant", "value": 40000}, register={"table": "input", "address": 0, "type": "int16"}),
           sp("b", {"kind": "constant", "value": -1}, register={"table": "input", "address": 1, "type": "uint16"}),
           sp("c", {"kind": "constant", "value": 655.35}, register={"table": "input", "address": 2, "type": "uint16", "scale": 0.01}),
           sp("d", {"kind": "constant", "value": 2.5}, register={"table": "input", "address": 3, "type": "int16"})]
    fw = Firmware(pts, backend=backend_name)
    fw.tick(T0)
    raw = struct.unpack(">4H", fw.modbus("rtu1").read_registers("input", 0, 4))
    assert raw == (32767, 0, 65535, 2)  # saturated, saturated, in range, round half to even
    assert [fw.quality(fw.index("rtu1", n)) for n in "abcd"] == [0x4, 0x4, 0, 0]


def test_coils_and_writes(backend_name):
    pts = [
        sp("brk", {"kind": "discrete", "initial": 2, "min": 1, "max": 2},
           register={"table": "coil", "address": 3, "type": "bool", "offset": 1}),
        sp("trip", {"kind": "discrete", "initial": 0}, register={"table": "discrete_input", "address": 0, "type": "bool"}),
        sp("sp", None, register={"table": "holding", "address": 0, "type": "float32", "word_order": "little"}),
        sp("tap", {"kind": "discrete", "initial": 5, "min": 1, "max": 17}, register={"table": "holding", "address": 2, "type": "int16"}),
        sp("kw", {"kind": "sine", "mean": 5, "amplitude": 1, "period": 10}, register={"table": "holding", "address": 3, "type": "uint16"}),
    ]
    fw = Firmware(pts, table_sizes={"rtu1": {"coil": 8, "holding": 16}}, backend=backend_name)
    mb = fw.modbus("rtu1")
    fw.tick(T0)
    assert (mb.size("coil"), mb.size("holding"), mb.size("discrete_input")) == (8, 16, 1)
    assert mb.read_bits("coil", 0, 8) == b"\0\0\0\1\0\0\0\0"  # breaker closed (2) shows 1
    mb.write_bits(3, b"\0")
    mb.write_bits(6, b"\1\1")  # unmapped coils: counted, ignored
    assert mb.dropped_writes == 2
    mb.write_registers(0, _arrange(struct.pack(">f", 61.25), "CDAB") + struct.pack(">h", 11))
    fw.tick(T0 + 1)
    assert fw.value(fw.index("rtu1", "brk")) == 1  # open
    assert mb.read_bits("coil", 3, 1) == b"\0"
    assert fw.value(fw.index("rtu1", "sp")) == 61.25 and fw.value(fw.index("rtu1", "tap")) == 11
    assert mb.read_registers("holding", 2, 1) == struct.pack(">h", 11)
    mb.write_registers(1, b"\x42\x80")  # CDAB: only the high word of the float, merged with the low word
    fw.tick(T0 + 2)
    assert fw.value(fw.index("rtu1", "sp")) == 64.0  # 0x42800000
    with pytest.raises(ReadOnlyPoint, match="sine signal cannot be commanded"):
        mb.write_registers(3, b"\x00\x07")
    with pytest.raises(ReadOnlyPoint, match="outside the allowed range"):
        mb.write_registers(2, struct.pack(">h", 40))
    with pytest.raises(IndexError, match="outside the table"):
        mb.read_registers("holding", 10, 7)
