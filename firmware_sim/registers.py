"""The one Modbus register layout: data types, word/byte order, decoding and encoding.

Owned here, in the firmware (which depends on nothing of ours), because all sides use it: the
firmware's register images, the emulated Modbus devices, the gateway's driver and its commands.

Modbus defines only 16-bit big-endian registers; devices lay 32-bit values over two of them
in any of four ways (ABCD big/big, CDAB word-swapped, BADC byte-swapped, DCBA both). A
decoder is built once per point (:func:`decoder`) so the poll loop does no branching on
the type or order per value.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Callable, Literal, Sequence

DataType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
Order = Literal["big", "little"]
ModbusTable = Literal["coil", "discrete_input", "holding", "input"]
TABLES: tuple[str, ...] = ("coil", "discrete_input", "holding", "input")

#: registers (or bits) a value of each type occupies
WIDTH: dict[str, int] = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}

Decoder = Callable[[Sequence[int], int], "int | float"]
"""``decode(registers, index)`` → the raw value starting at ``registers[index]``."""

_F32 = struct.Struct(">f")


def _swap(w: int) -> int:
    return ((w & 0xFF) << 8) | (w >> 8)


@lru_cache(maxsize=None)
def decoder(type_: DataType, word_order: Order = "big", byte_order: Order = "big") -> Decoder:
    """The decoder of one (type, word order, byte order); registers are ints 0..65535 as on the wire."""
    if type_ not in WIDTH:
        raise ValueError(f"unknown data type {type_!r}; use one of {', '.join(WIDTH)}")
    if word_order not in ("big", "little") or byte_order not in ("big", "little"):
        raise ValueError(f"word_order/byte_order must be 'big' or 'little', got {word_order!r}/{byte_order!r}")
    swap = byte_order == "little"

    if type_ == "bool":
        return lambda r, i: 1 if r[i] else 0
    if type_ == "uint16":
        return (lambda r, i: _swap(r[i])) if swap else (lambda r, i: r[i])
    if type_ == "int16":
        if swap:
            return lambda r, i: _signed16(_swap(r[i]))
        return lambda r, i: _signed16(r[i])

    hi_at, lo_at = (0, 1) if word_order == "big" else (1, 0)

    if swap:
        def u32(r: Sequence[int], i: int) -> int:
            return (_swap(r[i + hi_at]) << 16) | _swap(r[i + lo_at])
    else:
        def u32(r: Sequence[int], i: int) -> int:
            return (r[i + hi_at] << 16) | r[i + lo_at]

    if type_ == "uint32":
        return u32
    if type_ == "int32":
        return lambda r, i: _signed32(u32(r, i))
    unpack, to_bytes = _F32.unpack, int.to_bytes
    return lambda r, i: unpack(to_bytes(u32(r, i), 4, "big"))[0]


def _signed16(v: int) -> int:
    return v - 0x10000 if v & 0x8000 else v


def _signed32(v: int) -> int:
    return v - 0x100000000 if v & 0x80000000 else v


def words(u: int, width: int, word_order: Order = "big", byte_order: Order = "big") -> list[int]:
    """The registers carrying the unsigned bit pattern ``u`` of a ``width``-register value (inverse of
    :func:`decoder`'s word/byte handling)."""
    if width == 1:
        return [_swap(u) if byte_order == "little" else u]
    hi, lo = u >> 16, u & 0xFFFF
    ws = [hi, lo] if word_order == "big" else [lo, hi]
    return [_swap(w) for w in ws] if byte_order == "little" else ws
