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
from typing import Any, Protocol, runtime_checkable

from firmware_sim.registers import TABLES, decoder


@runtime_checkable
class ModbusDataModel(Protocol):
    """What the server needs from a register image. Ranges are validated by the caller."""

    def size(self, table: str) -> int: ...

    def read_bits(self, table: str, start: int, count: int) -> bytes:
        """one byte 0/1 per bit"""
        ...

    def read_registers(self, table: str, start: int, count: int) -> bytes:
        """2*count bytes, big-endian registers as on the wire"""
        ...

    def write_bits(self, start: int, values: bytes) -> None:
        """coils; one byte 0/1 per bit"""
        ...

    def write_registers(self, start: int, data: bytes) -> None:
        """holding registers; big-endian as on the wire"""
        ...



class ReadOnlyPoint(ValueError):
    """A write to a register or coil whose point is not commandable."""


def decode(layout, words: list[int]) -> float:  # noqa: ANN001 - a RegisterLayout
    """Engineering value of a point's registers (inverse of the encoding in the samplers)."""
    return decoder(layout.type, layout.word_order, layout.byte_order)(words, 0) * layout.scale + layout.offset


class RegisterImages(Protocol):
    """What the Modbus view needs of the firmware (firmware_sim.firmware.Firmware provides it)."""

    plan: Any

    def image_bits(self, start: int, count: int) -> bytes: ...
    def image_registers(self, start: int, count: int) -> bytes: ...
    def set_state(self, i: int, value: float) -> None: ...


class FirmwareModbus:
    def __init__(self, fw: RegisterImages, device: str) -> None:
        self.fw = fw
        self.device = device
        self._tables = fw.plan.tables[device]
        self._owners: dict[tuple[str, int], tuple[int, int]] | None = None  # on the first write
        self.dropped_writes = 0

    def _owner(self, table: str, address: int) -> tuple[int, int] | None:
        if self._owners is None:
            self._owners = self.fw.plan.owners(self.device)
        return self._owners.get((table, address))

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
        return self.fw.image_bits(base + start, count)

    def read_registers(self, table: str, start: int, count: int) -> bytes:
        if table not in ("holding", "input"):
            raise ValueError(f"read_registers reads holding or input, not {table!r}")
        base, size = self._table(table)
        self._range(table, start, count, size)
        return self.fw.image_registers(base + start, count)

    def write_bits(self, start: int, values: bytes) -> None:
        base, size = self._table("coil")
        self._range("coil", start, len(values), size)
        for k, b in enumerate(values):
            owner = self._owner("coil", start + k)
            if owner is None:
                self.dropped_writes += 1
                continue
            i = owner[0]
            lay = self.fw.plan.layout(i)
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
            owner = self._owner("holding", addr)
            if owner is None:
                self.dropped_writes += 1
                continue
            i = owner[0]
            if i in done:
                continue
            done.add(i)
            lay = self.fw.plan.layout(i)
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
