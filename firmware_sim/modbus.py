"""Modbus data model over a Firmware's register images (the Modbus TCP server's backend).

Reads come from the consistent image of one tick. Writes decode the point's registers in
its word/byte order and call ``set_state``; they take effect at the next tick. A write
touching only part of a 32-bit point merges with the point's current registers. Writes
to unmapped addresses are counted in ``dropped_writes`` (and ignored: unmapped reads 0);
writes to a point that cannot be commanded raise ReadOnlyPoint (a Modbus server answers
exception 02 ILLEGAL DATA ADDRESS).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from firmware_sim.firmware import Firmware

TABLES = ("coil", "discrete_input", "holding", "input")


class ModbusDataModel(Protocol):
    def size(self, table: str) -> int: ...
    def read_bits(self, table: str, start: int, count: int) -> bytes: ...
    def read_registers(self, table: str, start: int, count: int) -> bytes: ...
    def write_bits(self, start: int, values: bytes) -> None: ...
    def write_registers(self, start: int, data: bytes) -> None: ...


class ReadOnlyPoint(ValueError):
    """A write to a register or coil whose point is not commandable."""


def _swap(w: int) -> int:
    return ((w >> 8) | (w << 8)) & 0xFFFF


def decode(layout, words: list[int]) -> float:
    """Engineering value of a point's registers (inverse of the encoding in the samplers)."""
    lb = layout.byte_order == "little"
    words = [_swap(w) if lb else w for w in words]
    if layout.width == 2:
        hi, lo = (words[1], words[0]) if layout.word_order == "little" else (words[0], words[1])
        u = (hi << 16) | lo
        raw = {"int32": struct.unpack(">i", struct.pack(">I", u))[0], "uint32": u,
               "float32": struct.unpack(">f", struct.pack(">I", u))[0]}[layout.type]
    else:
        raw = struct.unpack(">h", struct.pack(">H", words[0]))[0] if layout.type == "int16" else words[0]
    return raw * layout.scale + layout.offset


class FirmwareModbus:
    def __init__(self, fw: "Firmware", device: str) -> None:
        self.fw = fw
        self.device = device
        self._tables = fw.plan.tables[device]
        self.dropped_writes = 0

    def _table(self, table: str) -> tuple[int, int]:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
        return self._tables[table]

    def size(self, table: str) -> int:
        return self._table(table)[1]

    def read_bits(self, table: str, start: int, count: int) -> bytes:
        if table not in ("coil", "discrete_input"):
            raise ValueError(f"read_bits reads coil or discrete_input, not {table!r}")
        base, size = self._table(table)
        self._range(table, start, count, size)
        return self.fw._s.read_bits(base + start, count)[1]

    def read_registers(self, table: str, start: int, count: int) -> bytes:
        if table not in ("holding", "input"):
            raise ValueError(f"read_registers reads holding or input, not {table!r}")
        base, size = self._table(table)
        self._range(table, start, count, size)
        return self.fw._s.read_regs(base + start, count)[1]

    def write_bits(self, start: int, values: bytes) -> None:
        base, size = self._table("coil")
        self._range("coil", start, len(values), size)
        for k, b in enumerate(values):
            owner = self.fw.plan.owners.get((self.device, "coil", start + k))
            if owner is None:
                self.dropped_writes += 1
                continue
            i = owner[0]
            lay = self.fw.plan.slots[i].register
            self._command(i, (1 if b else 0) * lay.scale + lay.offset, f"coil {start + k}")

    def write_registers(self, start: int, data: bytes) -> None:
        if len(data) % 2:
            raise ValueError(f"write_registers: {len(data)} bytes is not a whole number of registers")
        base, size = self._table("holding")
        count = len(data) // 2
        self._range("holding", start, count, size)
        written = dict(zip(range(start, start + count), struct.unpack(f">{count}H", data)))
        done: set[int] = set()
        for addr in written:
            owner = self.fw.plan.owners.get((self.device, "holding", addr))
            if owner is None:
                self.dropped_writes += 1
                continue
            i = owner[0]
            if i in done:
                continue
            done.add(i)
            lay = self.fw.plan.slots[i].register
            cur = struct.unpack(f">{lay.width}H", self.read_registers("holding", lay.address, lay.width))
            words = [written.get(lay.address + w, cur[w]) for w in range(lay.width)]
            self._command(i, decode(lay, words), f"holding {lay.address}")

    def _command(self, i: int, value: float, where: str) -> None:
        try:
            self.fw.set_state(i, value)
        except ValueError as e:
            raise ReadOnlyPoint(f"{self.device} {where}: {e}") from None

    def _range(self, table: str, start: int, count: int, size: int) -> None:
        if start < 0 or count < 0 or start + count > size:
            raise IndexError(f"{self.device} {table} {start}..{start + count - 1} outside the table of {size}")
