"""The sampling thread, snapshot consistency, resource use and bad input."""

from __future__ import annotations

import gc
import os
import struct
import time
from array import array

import pytest
from pydantic import ValidationError

from firmware_sim import Firmware, PlanError, SimPoint
from firmware_sim.backend import sampler_class
from tests.firmware_sim.fwcases import T0, all_kinds, sp


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_snapshots_and_register_reads_never_see_half_a_tick(c_backend):
    n = 50_000
    pts = [sp(f"r{k}", {"kind": "ramp", "start": 0, "rate": 1},
              register={"table": "holding", "address": 2 * k, "type": "uint32", "scale": 1e-3} if k < 2000 else None)
           for k in range(n)]
    fw = Firmware(pts, backend=c_backend)
    mb = fw.modbus("rtu1")
    fw.start(0.002)
    torn, seen_t, reads = [], set(), 0
    deadline = time.monotonic() + 1.0
    try:
        while time.monotonic() < deadline:
            t, v, q = fw.snapshot()
            if min(v) != max(v):
                torn.append(("values", t))
            seen_t.add(t)
            regs = struct.unpack(">4000H", mb.read_registers("holding", 0, 4000))
            if len(set(zip(regs[0::2], regs[1::2]))) != 1:
                torn.append(("registers", t))
            reads += 1
    finally:
        fw.stop()
    assert not torn, torn[:5]
    assert reads > 20 and len(seen_t) > 20  # many ticks were published while we read
    assert all(abs(t / 0.002 - round(t / 0.002)) < 1e-3 for t in seen_t)  # ticks on the absolute schedule


def test_thread_values_come_from_the_scheduled_time(backend_name):
    pts = [sp(f"s{k}", {"kind": "sine", "mean": k, "amplitude": 3, "period": 0.37 + k, "noise": 0.5}) for k in range(20)]
    fw = Firmware(pts, seed=11, backend=backend_name)
    fw.start(0.005)
    time.sleep(0.2)
    t, v, _ = fw.snapshot()
    fw.stop()
    late, ticks, skipped = fw.lateness()
    assert ticks >= 10 and len(late) == ticks  # one lateness sample per scheduled tick
    assert all(x >= 0 for x in late)  # never early: values are computed at or after their time
    assert not fw.running
    other = Firmware(pts, seed=11, backend=backend_name)
    other.tick(t)
    assert other.snapshot()[1].tobytes() == v.tobytes()  # bit-identical: jitter is not value error


def test_spin_wait_and_realtime_options(c_backend):
    fw = Firmware([sp("s", {"kind": "sine", "period": 3})], backend=c_backend)
    with pytest.raises(ValueError, match="spin must be >= 0 and shorter than the period"):
        fw.start(0.001, spin=0.001)
    with pytest.raises(ValueError, match="spin must be"):
        fw.start(0.001, spin=-1e-4)
    fw.start(0.002, realtime=True, spin=0.0005)  # SCHED_FIFO if permitted, silently not otherwise
    time.sleep(0.15)
    fw.stop()
    late, ticks, _ = fw.lateness()
    assert ticks >= 30 and all(x >= 0 for x in late)
    assert fw.snapshot()[0] % 0.002 == pytest.approx(0, abs=1e-6) or fw.snapshot()[0] % 0.002 == pytest.approx(0.002, abs=1e-6)


def test_start_stop_many_times_and_create_destroy_do_not_leak(c_backend):
    pts, groups = all_kinds()

    def cycle(k: int) -> None:
        fw = Firmware(pts, groups, backend=c_backend)
        for _ in range(k):
            fw.start(0.001)
            fw.stop()
        del fw

    cycle(50)
    for _ in range(20):
        cycle(0)
    gc.collect()
    before = _rss_kb()
    cycle(300)
    for _ in range(200):
        cycle(0)
    gc.collect()
    assert _rss_kb() - before < 4096, f"RSS grew {_rss_kb() - before} kB"


def test_bad_run_parameters(backend_name):
    pts, groups = all_kinds()
    fw = Firmware(pts, groups, backend=backend_name)
    for bad in (-1, 0, float("nan"), float("inf"), "1s", True):
        with pytest.raises(ValueError, match="period must be a positive number of seconds"):
            fw.start(bad)
    with pytest.raises(ValueError, match="finite"):
        fw.tick(float("nan"))
    fw.start(0.01)
    try:
        with pytest.raises(RuntimeError, match="stop\\(\\) first"):
            fw.start(0.01)
        with pytest.raises(RuntimeError, match="stop\\(\\) first"):
            fw.tick(T0)
    finally:
        fw.stop()
    fw.stop()  # idempotent
    with pytest.raises(IndexError, match="out of range"):
        fw.value(10_000)
    with pytest.raises(KeyError, match="no point 'nope' on device 'rtu1'"):
        fw.index("rtu1", "nope")
    with pytest.raises(ValueError, match="sine signal cannot be commanded"):
        fw.set_state(fw.index("rtu1", "sine"), 1)
    with pytest.raises(ValueError, match="discrete state is an integer"):
        fw.set_state(fw.index("rtu1", "tap"), 2.5)
    with pytest.raises(ValueError, match="outside the allowed range 1..17"):
        fw.set_state(fw.index("rtu1", "tap"), 18)
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        fw.set_fault(0, {"kind": "gremlins"})


def test_bad_configuration_is_named():
    with pytest.raises(ValidationError, match="'sawtooth'"):
        SimPoint(device="d", name="x", signal={"kind": "sawtooth"})
    with pytest.raises(ValidationError, match="coils and discrete inputs are bool"):
        SimPoint(device="d", name="x", register={"table": "coil", "address": 0, "type": "uint16"})
    cases = [
        ([sp("p", {"kind": "derived", "group": "F9", "quantity": "P"})], "no load group 'F9'"),
        ([sp("e", {"kind": "counter", "source": "nope"})], "no point 'nope'"),
        ([sp("a", None), sp("a", None)], "used twice"),
        ([sp("r", {"kind": "ramp", "wrap": True, "max": 3})], "wrap needs both min and max"),
        ([sp("a", None, register={"table": "input", "address": 0, "type": "int32"}),
          sp("b", None, register={"table": "input", "address": 1, "type": "int16"})], "already used by points\\[0\\]"),
    ]
    for pts, msg in cases:
        with pytest.raises(PlanError, match=msg):
            Firmware(pts, backend="python")
    with pytest.raises(PlanError, match="beyond the table size 4"):
        Firmware([sp("a", None, register={"table": "input", "address": 3, "type": "float32"})],
                 table_sizes={"rtu1": {"input": 4}}, backend="python")
    with pytest.raises(ValueError, match="backend must be"):
        Firmware([sp("a", None)], backend="fortran")


def test_sampler_rejects_wrong_buffers(backend_name):
    cls, _ = sampler_class(backend_name)
    pts, groups = all_kinds()
    fw = Firmware(pts, groups, backend="python")
    P, n = fw.plan.params, fw.plan.params["n"]

    def bufs(**over):
        b = dict(values=array("f", [0.0]) * n, quality=array("H", [0]) * n, regs=array("H", [0]) * P["n_regs"],
                 bits=array("B", [0]) * P["n_bits"], changed=array("B", [0]) * n)
        b.update(over)
        return b

    with pytest.raises(TypeError, match="values"):
        cls(P, **bufs(values=array("d", [0.0]) * n))
    with pytest.raises(ValueError, match=f"quality: expected {n} items"):
        cls(P, **bufs(quality=array("H", [0]) * (n - 1)))
    with pytest.raises(TypeError, match="regs"):
        cls(P, **bufs(regs=[0] * P["n_regs"]))
    s = cls(P, **bufs())
    s.tick(T0)
    with pytest.raises(TypeError, match="values"):
        s.snapshot_into(array("i", [0]) * n, array("H", [0]) * n)
    with pytest.raises(IndexError):
        s.read_regs(P["n_regs"] - 1, 2)
    with pytest.raises(IndexError):
        s.set_state(n, 1.0)
    with pytest.raises(ValueError, match="unknown fault kind"):
        s.set_fault(0, 99)
    if backend_name == "c":
        broken = dict(P, kind=array("B", [9]) * n)
        with pytest.raises(ValueError, match="firmware parameters rejected"):
            cls(broken, **bufs())
        with pytest.raises(ValueError, match="params.noise: expected"):
            cls(dict(P, noise=array("f", [0.0])), **bufs())
