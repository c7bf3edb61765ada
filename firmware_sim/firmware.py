"""Firmware: the simulated sampling loop of a set of emulated devices (the public face).

Build it from SimPoints, drive it with ``tick(t)`` (simulated time) or ``start(period)``
(a real-time thread on an absolute schedule), and read values, quality, changed flags
and Modbus register images. Either backend (C core or Python reference) sits behind it.
"""

from __future__ import annotations

import math
from array import array
from typing import Mapping, Sequence

from pydantic import TypeAdapter

from firmware_sim import plant as plant_mod
from firmware_sim.backend import sampler_class
from firmware_sim.model import SimPoint
from firmware_sim.plan import HOLD, PLANT, WAVE, Plan, PlanError, compile_plan, fault_args
from firmware_sim.spec import FaultSpec, LoadGroup

_FAULT = TypeAdapter(FaultSpec)


class Firmware:
    def __init__(
        self,
        points: Sequence[SimPoint],
        groups: Mapping[str, Sequence[LoadGroup]] | None = None,
        seed: int = 0,
        table_sizes: Mapping[str, Mapping[str, int]] | None = None,
        backend: str = "auto",
        plant: plant_mod.PlantData | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise PlanError(f"seed must be an integer, got {seed!r}")
        self._init(compile_plan(points, groups or {}, seed, table_sizes or {}, plant), backend)

    @classmethod
    def of_plan(cls, plan: Plan, backend: str = "auto") -> "Firmware":
        """The firmware of a plan compiled elsewhere (the emulator compiles it in its loader process)."""
        fw = cls.__new__(cls)
        fw._init(plan, backend)
        return fw

    def _init(self, plan: Plan, backend: str) -> None:
        self.plan = plan
        cls, self.backend = sampler_class(backend)
        P = self.plan.params
        n = P["n"]
        self._values = array("f", [0.0]) * n
        self._quality = array("H", [0]) * n
        self._regs = array("H", [0]) * P["n_regs"]
        self._bits = array("B", [0]) * P["n_bits"]
        self._changed = array("B", [0]) * n
        self._s = cls(P, self._values, self._quality, self._regs, self._bits, self._changed)
        self._modbus: dict = {}
        self._base_faults: dict[int, list[tuple]] | None = None  # point → configured faults, on first reset
        for i, args in plan.faults:
            self._s.set_fault(i, *args)

    # ------------------------------------------------------------ driving

    def tick(self, t: float) -> None:
        """Compute every point at simulated time ``t`` (epoch seconds) and publish."""
        self._s.tick(t)

    def start(self, period: float, realtime: bool = False, spin: float = 0.0) -> None:
        """Sample every ``period`` s at t = k*period (time.time() epoch) until stop().

        ``realtime`` asks for SCHED_FIFO (C backend), silently not granted without privileges.
        ``spin`` (C backend): wake that many seconds early and busy-wait to the scheduled time,
        trading CPU (spin/period of a core) for less wake-up jitter.
        """
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not (math.isfinite(period) and period > 0):
            raise ValueError(f"start(period): period must be a positive number of seconds, got {period!r}")
        if isinstance(spin, bool) or not isinstance(spin, (int, float)) or not 0 <= spin < period:
            raise ValueError(f"start(spin={spin!r}): spin must be >= 0 and shorter than the period")
        self._s.start(float(period), bool(realtime), float(spin))

    def stop(self) -> None:
        self._s.stop()

    @property
    def running(self) -> bool:
        return bool(self._s.running())

    def lateness(self) -> tuple[array, int, int]:
        """(lateness in µs of recent scheduled ticks, ticks done, ticks skipped) of the thread."""
        raw, ticks, skipped = self._s.lateness()
        a = array("f")
        a.frombytes(raw)
        return a, ticks, skipped

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> "Firmware":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ reading

    @property
    def size(self) -> int:
        return self.plan.params["n"]

    def index(self, device: str, point: str) -> int:
        try:
            return self.plan.index[(device, point)]
        except KeyError:
            names = sorted(n for n in self.plan.index.by_device.get(device, {}) if not n.startswith("@group:"))
            hint = f"points of {device!r}: {', '.join(names[:10])}" if names else f"no device {device!r}"
            raise KeyError(f"no point {point!r} on device {device!r} ({hint})") from None

    def name(self, i: int) -> tuple[str, str]:
        return self.plan.name(self._check(i))

    def value(self, i: int) -> float:
        return self._values[self._check(i)]

    def quality(self, i: int) -> int:
        return self._quality[self._check(i)]

    def outputs(self) -> tuple[array, array]:
        """The published (values, quality) arrays themselves, indices as :meth:`index`: no copy and no
        check per read, for the emulator's per-tick loop on the loop that ticks (the next tick overwrites
        them; another thread wants :meth:`snapshot`). Read only."""
        return self._values, self._quality

    def snapshot(self) -> tuple[float, array, array]:
        """(t, values, quality) of one whole tick; indices as :meth:`index`."""
        v = array("f", [0.0]) * self.size
        q = array("H", [0]) * self.size
        t = self._s.snapshot_into(v, q)
        return t, v, q

    def take_changed(self) -> list[int]:
        """Points whose value moved beyond the deadband, or whose quality changed, since the last call."""
        return self._s.take_changed()

    def take_changed_in(self, sel: array) -> list[int]:
        """Positions ``k`` in ``sel`` (an ``array('i')`` of point indices) whose point changed since it was last
        taken; only those flags are cleared. The emulator takes the points of the devices someone listens to,
        so a tick costs what is read, and a device that gets a listener later takes what piled up meanwhile."""
        return self._s.take_changed_in(sel)

    # ------------------------------------------------------------ commands and faults

    def set_state(self, i: int, value: float) -> None:
        """A command: discrete state (breaker 1 open / 2 closed, tap position) or analog setpoint.

        Takes effect at the next tick.
        """
        i = self._check(i)
        kind, signal = self.plan.kinds[i], self.plan.signal_kind(i)
        where = "/".join(self.plan.name(i))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"set_state({where}): expected a finite number, got {value!r}")
        if kind == HOLD and signal is not None:
            if value != int(value):
                raise ValueError(f"set_state({where}): a discrete state is an integer, got {value!r}")
            lo, hi = self.plan.limits(i)
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(f"set_state({where}): {value:g} outside the allowed range {lo}..{hi}")
        elif kind == PLANT:
            self._check_plant_state(where, i, value)
        elif kind == WAVE and signal != "constant" or kind not in (HOLD, WAVE):
            raise ValueError(
                f"set_state({where}): a {signal} signal cannot be commanded; "
                "only discrete, constant and signal-less (setpoint) points accept commands"
            )
        self._s.set_state(i, float(value))

    def _check_plant_state(self, where: str, i: int, value: float) -> None:
        """A command on a plant point changes the plant: a switch position, a tap, the source."""
        pl = self.plan.plant
        target = plant_mod.writable_target(pl, self.plan.params["ref"][i])
        if target is None:
            raise ValueError(f"set_state({where}): a measured plant quantity cannot be commanded; "
                             "command the breaker position, tap or source instead")
        what, k = target
        lo, hi = (0, 3) if what == "switch" else (0, 1) if what in ("source", "avc") else (
            pl.transformers[k].tap_min, pl.transformers[k].tap_max)
        if value != int(value) or not lo <= value <= hi:
            raise ValueError(f"set_state({where}): {value:g} is not a {what} state; use an integer {lo}..{hi}"
                             + (" (1 open, 2 closed)" if what == "switch" else ""))

    def plant_fault(self, i: int, kind: str, value: float, fault_type: str = "three_phase", knee_a: float = 0.0) -> None:
        """A physical event on the plant equipment point ``i`` reads (takes effect at the next tick).

        ``short_circuit``: fault impedance in ohm on a load/feeder (0 clears), ``fault_type``
        three_phase, phase_earth (phase A) or phase_phase (B-C);
        ``load_step``: demand factor of a load (1 = the day shape); ``loss_of_supply`` (any plant
        point): 1 drops the source, 0 restores it; ``breaker_fail``: 1 makes a breaker ignore trips;
        ``tap_runaway``: a transformer's tap changer steps on its own, 1 raising, 2 lowering, 0 repaired;
        ``ct_saturation``: a breaker's CTs reproduce only ``value`` (0..1) of the current above ``knee_a``
        amperes, readings and relay alike (1 or 0: healthy again).
        """
        i = self._check(i)
        where = "/".join(self.plan.name(i))
        if self.plan.kinds[i] != PLANT:
            raise ValueError(f"{kind} on {where}: the point is not a plant quantity; target a point with `kind: plant`")
        if kind not in plant_mod.PLANT_FAULTS:
            raise ValueError(f"unknown plant event {kind!r}; use one of {', '.join(plant_mod.PLANT_FAULTS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{kind} on {where}: expected a number >= 0, got {value!r}")
        eq_name, eq_type = self.plan.plant.equipment()[self.plan.params["ref"][i] // plant_mod.NQ]
        want = {"short_circuit": "load", "load_step": "load", "loss_of_supply": "source", "breaker_fail": "switch",
                "tap_runaway": "transformer", "ct_saturation": "switch"}[kind]
        if eq_type != want and kind != "loss_of_supply":  # the site's one source, from any plant point
            raise ValueError(f"{kind} on {where}: the point reads {eq_type} {eq_name!r}; {kind} applies to a {want}")
        code = plant_mod.PLANT_FAULTS[kind]
        if kind == "short_circuit":
            if fault_type not in plant_mod.FAULT_TYPES:
                raise ValueError(f"short_circuit on {where}: type {fault_type!r}; use one of {', '.join(plant_mod.FAULT_TYPES)}")
            code = plant_mod.FAULT_TYPES[fault_type]
        if kind == "ct_saturation":
            if isinstance(knee_a, bool) or not isinstance(knee_a, (int, float)) or not math.isfinite(knee_a) or knee_a < 0:
                raise ValueError(f"ct_saturation on {where}: knee_a is a current >= 0, got {knee_a!r}")
            self._s.plant_fault(i, plant_mod.CT_KNEE, float(knee_a))
        self._s.plant_fault(i, code, float(value))

    def set_fault(self, i: int, fault: FaultSpec | dict) -> None:
        """Add a fault (data, see firmware_sim.spec); faults apply in the order they were set."""
        i = self._check(i)
        if isinstance(fault, dict):
            fault = _FAULT.validate_python(fault)
        if not hasattr(fault, "kind"):
            raise TypeError(f"set_fault: expected a FaultSpec or dict, got {type(fault).__name__}")
        self._s.set_fault(i, *fault_args(fault))

    def clear_faults(self, i: int) -> None:
        self._s.clear_faults(self._check(i))

    def reset_faults(self, i: int) -> None:
        """Clear point ``i``'s faults and set its configured ones (the plan's) again, in their order:
        what an injector does before re-applying its active faults (no config model needed)."""
        i = self._check(i)
        base = self._base_faults
        if base is None:
            base = self._base_faults = {}
            for j, args in self.plan.faults:
                base.setdefault(j, []).append(args)
        self._s.clear_faults(i)
        for args in base.get(i, ()):
            self._s.set_fault(i, *args)

    # ------------------------------------------------------------ protocols

    def image_bits(self, start: int, count: int) -> bytes:
        """Packed bits of the coil/discrete-input image of the last tick (one consistent snapshot)."""
        return self._s.read_bits(start, count)[1]

    def image_registers(self, start: int, count: int) -> bytes:
        """Big-endian words of the register image of the last tick (one consistent snapshot)."""
        return self._s.read_regs(start, count)[1]

    def modbus(self, device: str):
        """The Modbus data model of one device (see firmware_sim.modbus.ModbusDataModel)."""
        from firmware_sim.modbus import FirmwareModbus

        if device not in self.plan.tables:
            raise KeyError(f"no device {device!r}; known: {', '.join(self.plan.tables)}")
        if device not in self._modbus:
            self._modbus[device] = FirmwareModbus(self, device)
        return self._modbus[device]

    def _check(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.size:
            raise IndexError(f"point index {i!r} out of range 0..{self.size - 1}")
        return i
