"""Request coalescing: group a device's points into as few block reads as the limits allow.

One round trip per block instead of per point is what makes polling thousands of points
cheap. A block never splits a point (a 32-bit value always comes in one reply), never
mixes tables, never exceeds the Modbus limits (125 registers, 2000 bits, or the smaller
per-device ``modbus.max_registers``/``max_bits``) and spans at most ``max_gap`` unused
addresses between neighbours — a device whose map has holes answers exception 02 to a
read across them, so ``max_gap: 0`` is the fix for such a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from gateway.protocols.modbus.config import ModbusDevice, ModbusPoint, ModbusTable


#: read function code of each table
FUNCTION: dict[str, int] = {"coil": 1, "discrete_input": 2, "holding": 3, "input": 4}
BIT_TABLES = ("coil", "discrete_input")
TABLE_ORDER = ("coil", "discrete_input", "holding", "input")

MAX_REGISTERS = 125  # Modbus Application Protocol v1.1b3, 6.3/6.4
MAX_BITS = 2000  # 6.1/6.2


class PlanError(ValueError):
    """The points cannot be read within the configured limits."""


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers (or bits) of ``table`` from ``start``."""

    table: ModbusTable
    start: int
    count: int
    points: tuple[ModbusPoint, ...]

    @property
    def function(self) -> int:
        return FUNCTION[self.table]

    @property
    def bits(self) -> bool:
        return self.table in BIT_TABLES

    def __str__(self) -> str:
        return f"{self.table}:{self.start}..{self.start + self.count - 1}"


def plan(
    points: Sequence[ModbusPoint],
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
    max_gap: int = 8,
) -> list[Block]:
    """Blocks covering every point, in table then address order (greedy, which is optimal
    for intervals on a line with a span limit and a gap limit)."""
    if not 1 <= max_registers <= MAX_REGISTERS:
        raise PlanError(f"max_registers {max_registers} is outside 1..{MAX_REGISTERS}")
    if not 1 <= max_bits <= MAX_BITS:
        raise PlanError(f"max_bits {max_bits} is outside 1..{MAX_BITS}")
    if max_gap < 0:
        raise PlanError(f"max_gap {max_gap} is negative; use 0 to read only adjacent addresses together")
    by_table: dict[str, list[ModbusPoint]] = {t: [] for t in TABLE_ORDER}
    for p in points:
        by_table[p.table].append(p)
    blocks: list[Block] = []
    for table in TABLE_ORDER:
        limit = max_bits if table in BIT_TABLES else max_registers
        group = sorted(by_table[table], key=lambda p: p.address)
        cur: list[ModbusPoint] = []
        start = end = 0  # end: one past the last address in the current block
        for p in group:
            if p.width > limit:
                raise PlanError(
                    f"point {p.name!r} ({p.type}, {p.width} registers) cannot be read with modbus.max_registers = {limit};"
                    f" raise max_registers to at least {p.width}"
                )
            if p.address < end:
                raise PlanError(f"point {p.name!r} overlaps another point at {table}:{p.address}; give each point its own addresses")
            if cur and p.address - end <= max_gap and p.address + p.width - start <= limit:
                cur.append(p)
                end = p.address + p.width
                continue
            if cur:
                blocks.append(Block(table, start, end - start, tuple(cur)))  # type: ignore[arg-type]
            cur, start, end = [p], p.address, p.address + p.width
        if cur:
            blocks.append(Block(table, start, end - start, tuple(cur)))  # type: ignore[arg-type]
    return blocks


def plan_device(device: ModbusDevice) -> list[Block]:
    """:func:`plan` with the device's ``modbus`` options; errors name the device."""
    o = device.modbus
    try:
        return plan(device.points, o.max_registers, o.max_bits, o.max_gap)
    except PlanError as e:
        raise PlanError(f"device {device.name!r}: {e}") from None
