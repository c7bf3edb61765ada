"""Compile SimPoints into the structure-of-arrays parameter set both backends run.

Points are reordered by evaluation pass (wave kinds, scalar kinds, derived, counters) so
each pass walks one contiguous range; ``Plan.index`` maps (device, point) to the position.
Load groups become hidden points (never reported) that derived points read.

Per-kind meaning of the parameter arrays p[0..7] (ggfw.c reads the same):
  wave     p0 mean  p1 amplitude  p2 cycles/s  p3 phase (cycles)  p4 rate/s  p5 lo  p6 hi  p7 wrap span (0: clamp)
  walk     p0 start p1 step/sqrt(s) p2 revert/s p5 lo p6 hi
  steps    p0 count p1 repeat (0: none); ref: offset of (time, value) pairs in the pool
  profile  p0 local-time offset (s); ref: offset of 48 shape values in the pool
  hold     p0 initial state (p5/p6: allowed range, checked in Python)
  derived  p0 quantity  p1 power factor  p2 nominal V  p3 V noise  p4 group id; ref: group-load point
  counter  p0 scale/s  p1 start  p2 rollover (0: none); ref: source point
  plant    p1 factor (phase share x unit scale); ref: plant output index (firmware_sim.plant)
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from firmware_sim import plant as plant_mod
from firmware_sim import quality as Qb
from firmware_sim.model import BIT_TABLES, RegisterLayout, SimPoint
from firmware_sim.profiles import shape_values
from firmware_sim.spec import LoadGroup

WAVE, WALK, STEPS, PROFILE, HOLD, DERIVED, COUNTER, PLANT = range(8)
PASS_OF_KIND = {
    "constant": WAVE, "sine": WAVE, "ramp": WAVE,
    "random_walk": WALK, "steps": STEPS, "daily_profile": PROFILE, "discrete": HOLD, None: HOLD,
    "derived": DERIVED, "counter": COUNTER, "plant": PLANT,
}
PASS_RANK = {WAVE: 0, WALK: 1, STEPS: 1, PROFILE: 1, HOLD: 1, DERIVED: 2, PLANT: 2, COUNTER: 3}
QUANTITY = {"S": 0, "P": 1, "Q": 2, "I": 3, "V": 4, "PF": 5}
REG_TYPE = {None: 0, "bool": 1, "int16": 2, "uint16": 3, "int32": 4, "uint32": 5, "float32": 6}
FAULT_CODE = {
    "stuck": 1, "drift": 2, "spike": 3, "noise": 4, "offset": 5, "saturate": 6, "dropout": 7,
    "out_of_range": 8, "oscillation": 9, "scale_error": 10, "quality": 11,
}
NPARAM = 8
INF = math.inf
NAN = math.nan


class PlanError(ValueError):
    """A simulated point or group that cannot be run; the message names it and the fix."""


@dataclass
class Slot:
    """One entry of the plan while it is compiled (a configured point or a hidden group load)."""

    device: str
    name: str
    signal: object
    deadband: float = 0.0
    register: RegisterLayout | None = None
    hidden: bool = False
    where: str = ""


#: signal kinds by code (``Plan.signal``; 0: no signal, a setpoint held until a command)
SIGNAL_KINDS: tuple[str | None, ...] = (None, *[k for k in PASS_OF_KIND if k is not None])
_SIGNAL_CODE = {k: c for c, k in enumerate(SIGNAL_KINDS)}
_TABLE_CODE = {t: c for c, t in enumerate(("coil", "discrete_input", "holding", "input"))}
_TYPE_OF = {c: t for t, c in REG_TYPE.items()}


class PointIndex:
    """(device, point) → plan position, one small dict per device.

    Why not one dict keyed by (device, point) tuples: a tuple and an entry per point were
    ~200 bytes of the ~2.6 KB a point cost at 10,000 devices (bench_emulator_scale.py)."""

    __slots__ = ("by_device",)

    def __init__(self) -> None:
        self.by_device: dict[str, dict[str, int]] = {}

    def __getitem__(self, key: tuple[str, str]) -> int:
        return self.by_device[key[0]][key[1]]

    def get(self, key: tuple[str, str], default: int | None = None) -> int | None:
        d = self.by_device.get(key[0])
        return default if d is None else d.get(key[1], default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and self.get(key) is not None  # type: ignore[arg-type]

    def __len__(self) -> int:
        return sum(len(d) for d in self.by_device.values())

    def __iter__(self):  # noqa: ANN204 - (device, point) keys, as a dict's
        return ((dev, name) for dev, d in self.by_device.items() for name in d)

    def items(self):  # noqa: ANN201
        return (((dev, name), i) for dev, d in self.by_device.items() for name, i in d.items())

    def __getstate__(self) -> dict:
        return self.by_device

    def __setstate__(self, state: dict) -> None:
        self.by_device = state


@dataclass
class Plan:
    """The compiled firmware: parameter arrays and compact per-point tables (no models kept).

    Per point it keeps its name, device id, signal-kind code and register table code; the
    rest lives in ``params`` (what the samplers run). A RegisterLayout is rebuilt on demand
    (:meth:`layout`), and a device's register owners when it is first written (:meth:`owners`)."""

    params: dict
    index: PointIndex
    kinds: array
    # Modbus image: device -> table -> (base offset in the regs/bits image, size)
    tables: dict[str, dict[str, tuple[int, int]]]
    names: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    device_of: array = field(default_factory=lambda: array("I"))
    signal: array = field(default_factory=lambda: array("B"))  # code into SIGNAL_KINDS
    reg_table: array = field(default_factory=lambda: array("b"))  # code into TABLES order, -1: none
    n_regs: int = 0
    n_bits: int = 0
    plant: "plant_mod.PlantData | None" = None
    faults: list[tuple[int, tuple]] = field(default_factory=list)  # the points' configured faults, in order

    def name(self, i: int) -> tuple[str, str]:
        return self.devices[self.device_of[i]], self.names[i]

    def signal_kind(self, i: int) -> str | None:
        return SIGNAL_KINDS[self.signal[i]]

    def limits(self, i: int) -> tuple[int | None, int | None]:
        """The allowed range of a discrete point (integers, as its signal gives them; None: unbounded)."""
        lo, hi = self.params["p"][5][i], self.params["p"][6][i]
        return (None if lo == -INF else int(lo)), (None if hi == INF else int(hi))

    def layout(self, i: int) -> RegisterLayout | None:
        """Where point ``i`` sits in its device's Modbus tables (rebuilt from the arrays)."""
        t = self.reg_table[i]
        if t < 0:
            return None
        P = self.params
        table = ("coil", "discrete_input", "holding", "input")[t]
        order = P["reg_order"][i]
        return RegisterLayout(
            table=table, address=P["reg_off"][i] - self.tables[self.devices[self.device_of[i]]][table][0],  # type: ignore[arg-type]
            type=_TYPE_OF[P["reg_type"][i]], word_order="little" if order & 1 else "big",  # type: ignore[arg-type]
            byte_order="little" if order & 2 else "big", scale=P["reg_scale"][i], offset=P["reg_offset"][i],
        )

    def owners(self, device: str) -> dict[tuple[str, int], tuple[int, int]]:
        """(table, address) → (point index, word offset inside the point) of one device's registers and bits."""
        out: dict[tuple[str, int], tuple[int, int]] = {}
        for i in self.index.by_device.get(device, {}).values():
            lay = self.layout(i)
            if lay is not None:
                for w in range(lay.width):
                    out[(lay.table, lay.address + w)] = (i, w)
        return out


def fault_args(fault) -> tuple[int, float, float, float, int]:
    """A FaultSpec as the (kind code, a, b, c, quality flags) tuple the samplers take."""
    k = fault.kind
    code = FAULT_CODE[k]
    if k == "stuck":
        return code, NAN if fault.value is None else fault.value, 0.0, 0.0, 0
    if k == "drift":
        return code, fault.rate, 0.0, 0.0, 0
    if k == "spike":
        return code, fault.magnitude, fault.every, fault.width, 0
    if k == "noise":
        return code, fault.sigma, 0.0, 0.0, 0
    if k == "offset":
        return code, fault.value, 0.0, 0.0, 0
    if k == "saturate":
        return code, -INF if fault.min is None else fault.min, INF if fault.max is None else fault.max, 0.0, 0
    if k == "dropout":
        return code, 0.0, 0.0, 0.0, 0
    if k == "out_of_range":
        return code, NAN if fault.value is None else fault.value, 0.0, 0.0, 0
    if k == "oscillation":
        return code, float(fault.states[0]), float(fault.states[1]), fault.period, 0
    if k == "scale_error":
        return code, fault.factor, 0.0, 0.0, 0
    if k == "quality":
        q = 0
        for name in fault.flags:
            q |= Qb.FLAG_BITS.get(name, 0)
        if "invalid" in fault.flags:
            q |= Qb.INVALID
        elif "questionable" in fault.flags:
            q |= Qb.QUESTIONABLE
        return code, 0.0, 0.0, 0.0, q
    raise PlanError(f"unknown fault kind {k!r}; use one of {', '.join(FAULT_CODE)}")


def _kind_of(sig) -> int:
    return PASS_OF_KIND[None if sig is None else sig.kind]


def compile_plan(
    points: Sequence[SimPoint],
    groups: Mapping[str, Sequence[LoadGroup]],
    seed: int,
    table_sizes: Mapping[str, Mapping[str, int]],
    plant: "plant_mod.PlantData | None" = None,
) -> Plan:
    slots: list[Slot] = []
    seen: dict[tuple[str, str], str] = {}
    for pi, p in enumerate(points):
        if not isinstance(p, SimPoint):
            raise PlanError(f"points[{pi}]: expected a SimPoint, got {type(p).__name__}")
        key = (p.device, p.name)
        where = f"points[{pi}] ({p.device}/{p.name})"
        if key in seen:
            raise PlanError(f"{where}: the name is used twice on device {p.device!r} (also {seen[key]}); rename one")
        seen[key] = where
        slots.append(Slot(p.device, p.name, p.signal, p.deadband, p.register, False, where))
    group_id: dict[tuple[str, str], int] = {}
    group_spec: dict[tuple[str, str], LoadGroup] = {}
    for dev, gs in groups.items():
        for gi, g in enumerate(gs):
            where = f"groups[{dev!r}][{gi}] ({g.name})"
            if (dev, g.name) in group_spec:
                raise PlanError(f"{where}: group name used twice on device {dev!r}")
            if _kind_of(g.load) in (DERIVED, COUNTER):
                raise PlanError(f"{where}.load: a group load cannot be {g.load.kind}; use a signal such as daily_profile")
            group_id[(dev, g.name)] = len(group_id)
            group_spec[(dev, g.name)] = g
            slots.append(Slot(dev, "@group:" + g.name, g.load, 0.0, None, True, where))

    order = sorted(range(len(slots)), key=lambda j: PASS_RANK[_kind_of(slots[j].signal)])
    slots = [slots[j] for j in order]
    n = len(slots)
    index = {(s.device, s.name): i for i, s in enumerate(slots)}  # while compiling only
    kinds = [_kind_of(s.signal) for s in slots]
    ranks = [PASS_RANK[k] for k in kinds]
    n_wave = ranks.count(0)
    n_scalar_end = n_wave + ranks.count(1)
    n_derived_end = n_scalar_end + ranks.count(2)

    p = [array("d", [0.0]) * n for _ in range(NPARAM)]
    for i in range(n):
        p[5][i], p[6][i] = -INF, INF
    noise = array("f", [0.0]) * n
    deadband = array("f", [s.deadband for s in slots])
    report = array("B", [0 if s.hidden else 1 for s in slots])
    ref = array("i", [0]) * n
    harm_pt, harm_freq, harm_phase, harm_amp = array("i"), array("d"), array("d"), array("d")
    pool = array("d")

    for i, s in enumerate(slots):
        sig, w = s.signal, s.where
        k = None if sig is None else sig.kind
        if k == "constant":
            p[0][i], noise[i] = sig.value, sig.noise
        elif k == "sine":
            p[0][i], p[1][i], p[2][i], p[3][i], noise[i] = sig.mean, sig.amplitude, 1.0 / sig.period, sig.phase / 360.0, sig.noise
            for order_, rel in sig.harmonics:
                if order_ < 1:
                    raise PlanError(f"{w}.signal.harmonics: order {order_} must be >= 1, e.g. [[3, 0.05]]")
                harm_pt.append(i)
                harm_freq.append(order_ / sig.period)
                harm_phase.append(order_ * sig.phase / 360.0)
                harm_amp.append(rel)
        elif k == "ramp":
            p[0][i], p[4][i], noise[i] = sig.start, sig.rate, sig.noise
            p[5][i] = -INF if sig.min is None else sig.min
            p[6][i] = INF if sig.max is None else sig.max
            if sig.wrap:
                if sig.min is None or sig.max is None or not sig.max > sig.min:
                    raise PlanError(f"{w}.signal: wrap needs both min and max with max > min")
                p[7][i] = sig.max - sig.min
        elif k == "random_walk":
            p[0][i], p[1][i], p[2][i] = sig.start, sig.step, sig.revert
            p[5][i] = -INF if sig.min is None else sig.min
            p[6][i] = INF if sig.max is None else sig.max
        elif k == "steps":
            ref[i] = len(pool)
            p[0][i] = len(sig.schedule)
            p[1][i] = sig.repeat or 0.0
            for t_, v_ in sig.schedule:
                pool.extend((t_, v_))
        elif k == "daily_profile":
            ref[i] = len(pool)
            p[0][i] = sig.utc_offset_h * 3600.0
            noise[i] = sig.noise
            pool.extend(sig.peak * v for v in shape_values(sig.shape))
        elif k == "discrete":
            p[0][i] = sig.initial
            p[5][i] = -INF if sig.min is None else sig.min
            p[6][i] = INF if sig.max is None else sig.max
            if not p[5][i] <= sig.initial <= p[6][i]:
                raise PlanError(f"{w}.signal.initial: {sig.initial} is outside min..max")
        elif k == "derived":
            g = group_spec.get((s.device, sig.group))
            if g is None:
                known = sorted(n_ for d, n_ in group_spec if d == s.device)
                raise PlanError(f"{w}.signal.group: no load group {sig.group!r} on device {s.device!r} (known: {known})")
            ref[i] = index[(s.device, "@group:" + sig.group)]
            p[0][i], p[1][i], p[2][i], p[3][i] = QUANTITY[sig.quantity], g.power_factor, g.voltage, g.voltage_noise
            p[4][i] = group_id[(s.device, sig.group)]
            noise[i] = sig.noise
        elif k == "counter":
            src = index.get((s.device, sig.source))
            if src is None or slots[src].hidden:
                raise PlanError(f"{w}.signal.source: no point {sig.source!r} on device {s.device!r}")
            if kinds[src] == COUNTER:
                raise PlanError(f"{w}.signal.source: {sig.source!r} is itself a counter; integrate a measured point")
            ref[i] = src
            p[0][i], p[1][i] = sig.scale, sig.start
            p[2][i] = sig.rollover or 0.0
        elif k == "plant":
            if plant is None:
                raise PlanError(f"{w}.signal: a plant quantity needs the site's `plant:` model; add one or use a signal")
            try:
                ref[i] = plant_mod.resolve(plant, sig.equipment, plant_mod.phase_quantity(sig.quantity, sig.phase))
            except plant_mod.PlantRefError as e:
                raise PlanError(f"{w}.signal: {e}") from None
            scale = 1.0 if sig.scale is None else sig.scale
            if sig.quantity in plant_mod.WRITABLE and (scale != 1.0 or sig.phase is not None):
                raise PlanError(f"{w}.signal: a {sig.quantity} point carries the plant state as is; remove scale and phase")
            q = plant_mod.phase_quantity(sig.quantity, sig.phase)
            p[1][i] = (1.0 if q != sig.quantity else plant_mod.phase_factor(sig.quantity, sig.phase)) * scale
            noise[i] = sig.noise

    tables, n_regs, n_bits = _tables(slots, points, table_sizes)
    reg_off, reg_type, reg_order, reg_scale, reg_offset, reg_table = _registers(slots, tables)
    plan = Plan({}, PointIndex(), array("B", kinds), tables, n_regs=n_regs, n_bits=n_bits, plant=plant,
                reg_table=reg_table)
    dev_id: dict[str, int] = {}
    for i, s in enumerate(slots):
        d = dev_id.setdefault(s.device, len(dev_id))
        plan.device_of.append(d)
        plan.names.append(s.name)
        plan.index.by_device.setdefault(s.device, {})[s.name] = i
        plan.signal.append(_SIGNAL_CODE[None if s.signal is None else s.signal.kind])  # type: ignore[attr-defined]
    plan.devices = list(dev_id)
    plan.faults = [(plan.index[(p.device, p.name)], fault_args(f)) for p in points for f in p.faults]
    plan.params = {
        "n": n, "n_wave": n_wave, "n_scalar_end": n_scalar_end, "n_derived_end": n_derived_end,
        "seed": int(seed) & 0xFFFFFFFFFFFFFFFF, "kind": plan.kinds, "p": p, "noise": noise,
        "deadband": deadband, "report": report, "ref": ref, "reg_off": reg_off, "reg_type": reg_type,
        "reg_order": reg_order, "reg_scale": reg_scale, "reg_offset": reg_offset,
        "n_harm": len(harm_pt), "harm_pt": harm_pt, "harm_freq": harm_freq, "harm_phase": harm_phase,
        "harm_amp": harm_amp, "n_pool": len(pool), "pool": pool, "n_regs": plan.n_regs, "n_bits": plan.n_bits,
        "plant": plant_mod.compile_plant(plant) if plant is not None else None,
    }
    return plan


def _tables(slots: list[Slot], points: Sequence[SimPoint], table_sizes: Mapping[str, Mapping[str, int]]):
    """Lay out every device's four tables in one register image and one bit image."""
    sizes: dict[str, dict[str, int]] = {}
    for p in points:
        sizes.setdefault(p.device, {})
        if p.table_sizes:
            for t, sz in p.table_sizes.items():
                sizes[p.device][t] = max(sizes[p.device].get(t, 0), sz)
    for dev, tabs in table_sizes.items():
        for t, sz in tabs.items():
            if t not in ("coil", "discrete_input", "holding", "input"):
                raise PlanError(f"table_sizes[{dev!r}]: unknown table {t!r}; use coil, discrete_input, holding or input")
            if not isinstance(sz, int) or sz < 0 or sz > 65536:
                raise PlanError(f"table_sizes[{dev!r}][{t!r}]: size must be an integer 0..65536, got {sz!r}")
            sizes.setdefault(dev, {})[t] = sz
    auto: dict[tuple[str, str], int] = {}
    for s in slots:
        if s.register is not None:
            k = (s.device, s.register.table)
            auto[k] = max(auto.get(k, 0), s.register.address + s.register.width)
    tables: dict[str, dict[str, tuple[int, int]]] = {}
    n_regs = n_bits = 0
    for dev in dict.fromkeys([s.device for s in slots if not s.hidden] + list(sizes)):
        tables[dev] = {}
        for t in ("coil", "discrete_input", "holding", "input"):
            sz = sizes.get(dev, {}).get(t, auto.get((dev, t), 0))
            if t in BIT_TABLES:
                tables[dev][t] = (n_bits, sz)
                n_bits += sz
            else:
                tables[dev][t] = (n_regs, sz)
                n_regs += sz
    return tables, n_regs, n_bits


def _registers(slots: list[Slot], tables: dict[str, dict[str, tuple[int, int]]]):
    """Each point's place and encoding in the images; overlapping points are refused."""
    n = len(slots)
    reg_off = array("i", [-1]) * n
    reg_type = array("B", [0]) * n
    reg_order = array("B", [0]) * n
    reg_scale = array("d", [1.0]) * n
    reg_offset = array("d", [0.0]) * n
    reg_table = array("b", [-1]) * n
    owners: dict[tuple[str, str, int], int] = {}
    for i, s in enumerate(slots):
        r = s.register
        if r is None:
            continue
        base, size = tables[s.device][r.table]
        if r.address + r.width > size:
            raise PlanError(
                f"{s.where}.register: {r.table} address {r.address} (+{r.width}) lies beyond the table size {size};"
                f" raise table_sizes[{s.device!r}][{r.table!r}]"
            )
        for w in range(r.width):
            k = (s.device, r.table, r.address + w)
            if k in owners:
                raise PlanError(f"{s.where}.register: {r.table} address {r.address + w} is already used by "
                                f"{slots[owners[k]].where}")
            owners[k] = i
        reg_off[i] = base + r.address
        reg_type[i] = REG_TYPE[r.type]
        reg_order[i] = (1 if r.word_order == "little" else 0) | (2 if r.byte_order == "little" else 0)
        reg_scale[i], reg_offset[i] = r.scale, r.offset
        reg_table[i] = _TABLE_CODE[r.table]
    return reg_off, reg_type, reg_order, reg_scale, reg_offset, reg_table
