"""Request coalescing: gaps, the 125/2000 limits, mixed tables, 32-bit values kept whole."""

from __future__ import annotations

import random

import pytest

from gateway.southbound.modbus.plan import Block, PlanError, plan, plan_device
from tests.modbus.helpers import device, point


def spans(blocks: list[Block]) -> list[tuple[str, int, int]]:
    return [(b.table, b.start, b.count) for b in blocks]


def test_neighbours_within_gap_merge_and_beyond_split() -> None:
    pts = [point("a", "holding", 0), point("b", "holding", 1), point("c", "holding", 6), point("d", "holding", 16)]
    # gap a..b 0, b..c 4 unused (2..5), c..d 9 unused (7..15)
    assert spans(plan(pts, max_gap=4)) == [("holding", 0, 7), ("holding", 16, 1)]
    assert spans(plan(pts, max_gap=3)) == [("holding", 0, 2), ("holding", 6, 1), ("holding", 16, 1)]
    assert spans(plan(pts, max_gap=9)) == [("holding", 0, 17)]
    assert spans(plan(pts, max_gap=0)) == [("holding", 0, 2), ("holding", 6, 1), ("holding", 16, 1)]


def test_register_limit_125_and_configured_smaller() -> None:
    pts = [point(f"p{i}", "input", i) for i in range(300)]
    assert spans(plan(pts)) == [("input", 0, 125), ("input", 125, 125), ("input", 250, 50)]
    assert spans(plan(pts[:25], max_registers=10)) == [("input", 0, 10), ("input", 10, 10), ("input", 20, 5)]


def test_bit_limit_2000() -> None:
    pts = [point(f"c{i}", "coil", i, "bool", "Discrete") for i in range(2500)]
    assert spans(plan(pts)) == [("coil", 0, 2000), ("coil", 2000, 500)]
    assert spans(plan(pts[:100], max_bits=64)) == [("coil", 0, 64), ("coil", 64, 36)]


def test_mixed_tables_never_share_a_block_and_get_their_function() -> None:
    pts = [
        point("h", "holding", 5),
        point("i", "input", 5),
        point("c", "coil", 5, "bool", "Discrete"),
        point("d", "discrete_input", 6, "bool", "Discrete"),
        point("h2", "holding", 6),
    ]
    blocks = plan(pts)
    assert spans(blocks) == [("coil", 5, 1), ("discrete_input", 6, 1), ("holding", 5, 2), ("input", 5, 1)]
    assert [b.function for b in blocks] == [1, 2, 3, 4]
    assert [[p.name for p in b.points] for b in blocks] == [["c"], ["d"], ["h", "h2"], ["i"]]


def test_32bit_value_at_the_limit_moves_whole_to_the_next_block() -> None:
    pts = [point(f"u{i}", "holding", i) for i in range(124)] + [point("f", "holding", 124, "float32")]
    blocks = plan(pts)
    assert spans(blocks) == [("holding", 0, 124), ("holding", 124, 2)]
    assert [p.name for p in blocks[1].points] == ["f"]


def test_random_layouts_respect_every_invariant() -> None:
    rng = random.Random(61850)
    for _ in range(200):
        max_regs, max_gap = rng.randint(2, 125), rng.randint(0, 12)
        pts, addr = [], rng.randint(0, 50)
        for i in range(rng.randint(1, 120)):
            t = rng.choice(["uint16", "int16", "int32", "uint32", "float32"])
            pts.append(point(f"p{i}", "holding", addr, t))
            addr += (2 if t in ("int32", "uint32", "float32") else 1) + rng.choice([0, 0, 0, 1, 3, 10, 40])
        rng.shuffle(pts)
        blocks = plan(pts, max_registers=max_regs, max_gap=max_gap)
        seen = []
        for b in blocks:
            assert 1 <= b.count <= max_regs
            inside = sorted(b.points, key=lambda p: p.address)
            assert inside[0].address == b.start
            assert inside[-1].address + inside[-1].width == b.start + b.count
            for p in inside:  # whole point inside the block
                assert b.start <= p.address and p.address + p.width <= b.start + b.count
            for x, y in zip(inside, inside[1:]):
                assert y.address - (x.address + x.width) <= max_gap
            seen += [p.name for p in b.points]
        assert sorted(seen) == sorted(p.name for p in pts)  # each point in exactly one block
        # greedy is minimal: a block only ends because the next point did not fit
        for x, y in zip(blocks, blocks[1:]):
            first_next = min(y.points, key=lambda p: p.address)
            assert first_next.address - (x.start + x.count) > max_gap or first_next.address + first_next.width - x.start > max_regs


def test_point_wider_than_the_limit_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match=r"'f'.*max_registers = 1.*at least 2"):
        plan([point("f", "holding", 0, "float32")], max_registers=1)
    dev = device([point("f", "holding", 0, "float32")], port=502, max_registers=1)
    with pytest.raises(PlanError, match=r"device 'pq1'"):
        plan_device(dev)


def test_device_options_are_used() -> None:
    dev = device([point("a", "holding", 0), point("b", "holding", 3)], port=502, max_gap=1)
    assert spans(plan_device(dev)) == [("holding", 0, 1), ("holding", 3, 1)]
    dev = device([point("a", "holding", 0), point("b", "holding", 3)], port=502, max_gap=2)
    assert spans(plan_device(dev)) == [("holding", 0, 4)]
