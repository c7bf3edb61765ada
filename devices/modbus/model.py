"""The register image an emulated Modbus device serves.

The server only talks to the :class:`ModbusDataModel` protocol, so the simulated firmware
(a C-backed image, later) and :class:`ArrayDataModel` (plain bytearrays, for tests and as
the fallback) are interchangeable. Registers are kept big-endian as on the wire so a read
is a slice, not a conversion.
"""

from __future__ import annotations

from firmware_sim.modbus import ModbusDataModel  # noqa: F401 - the one protocol, re-exported
from firmware_sim.registers import TABLES, ModbusTable  # noqa: F401

Table = ModbusTable
BIT_TABLES: tuple[Table, ...] = ("coil", "discrete_input")
MAX_TABLE_SIZE = 65536


class ArrayDataModel:
    """A bytearray-backed image: one byte per bit, two big-endian bytes per register.

    Besides the protocol it offers ``set_*``/``get_*`` for any table, which is how a
    value source (the firmware, or a test) updates inputs the master cannot write.
    """

    def __init__(self, coil: int = 0, discrete_input: int = 0, holding: int = 0, input: int = 0) -> None:
        sizes = {"coil": coil, "discrete_input": discrete_input, "holding": holding, "input": input}
        for name, n in sizes.items():
            if not 0 <= n <= MAX_TABLE_SIZE:
                raise ValueError(f"{name} table size {n} is out of range; use 0..{MAX_TABLE_SIZE}")
        self._bits = {t: bytearray(sizes[t]) for t in BIT_TABLES}
        self._regs = {t: bytearray(2 * sizes[t]) for t in ("holding", "input")}
        #: bumped on every write from the wire, so a firmware loop can notice master writes cheaply
        self.writes = 0

    def size(self, table: str) -> int:
        if table in self._bits:
            return len(self._bits[table])
        return len(self._regs[table]) // 2

    # ---- the protocol

    def read_bits(self, table: str, start: int, count: int) -> bytes:
        return bytes(self._bits[table][start : start + count])

    def read_registers(self, table: str, start: int, count: int) -> bytes:
        return bytes(self._regs[table][2 * start : 2 * (start + count)])

    def write_bits(self, start: int, values: bytes) -> None:
        self.set_bits("coil", start, values)
        self.writes += 1

    def write_registers(self, start: int, data: bytes) -> None:
        self.set_registers("holding", start, data)
        self.writes += 1

    # ---- the value-source side (any table)

    def set_bits(self, table: str, start: int, values: bytes | list[int] | list[bool]) -> None:
        b = self._bits[table]
        vals = bytes(1 if v else 0 for v in values)
        self._check(table, start, len(vals))
        b[start : start + len(vals)] = vals

    def set_registers(self, table: str, start: int, data: bytes) -> None:
        if len(data) % 2:
            raise ValueError(f"register data for {table}:{start} has odd length {len(data)}; registers are 2 bytes")
        self._check(table, start, len(data) // 2)
        self._regs[table][2 * start : 2 * start + len(data)] = data

    def set_register(self, table: str, address: int, value: int) -> None:
        self.set_registers(table, address, (value & 0xFFFF).to_bytes(2, "big"))

    def get_register(self, table: str, address: int) -> int:
        self._check(table, address, 1)
        return int.from_bytes(self._regs[table][2 * address : 2 * address + 2], "big")

    def get_bit(self, table: str, address: int) -> bool:
        self._check(table, address, 1)
        return bool(self._bits[table][address])

    def _check(self, table: str, start: int, count: int) -> None:
        if start < 0 or start + count > self.size(table):
            raise IndexError(f"{table}:{start}+{count} lies beyond the {table} table (size {self.size(table)})")
