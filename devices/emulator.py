"""Run every enabled device of a site config in one asyncio process, fed by the simulated firmware.

The firmware (firmware_sim) computes all points at a fixed tick; Modbus devices read its
register images directly, event-driven devices (DNP3 outstations, IEC 61850 IEDs) are told
about each changed point after a tick. Commands arriving at a device go back into the
firmware as state changes, so the next tick shows them on every protocol.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from math import copysign
from typing import Any, Awaitable, Callable

from devices.contract import DeviceUnavailable, emulated
from devices.emusite import EmulatedSite
from firmware_sim import Firmware, PlanError, RegisterLayout, SimPoint
from firmware_sim.plan import Plan, compile_plan
from gateway.config import Config
from gateway.protocols.modbus.config import ModbusDevice
from gateway.site.plant.points import firmware_signal

log = logging.getLogger(__name__)


def sim_points(cfg: Config) -> list[SimPoint]:
    """The firmware's input points of every enabled device.

    Equal register layouts are one (frozen) RegisterLayout: devices of one type repeat theirs, and
    validating one per point was a fifth of compiling the firmware (docs/performance.md, "Stop 24")."""
    pts: list[SimPoint] = []
    layouts: dict[tuple, RegisterLayout] = {}
    for d in cfg.devices:
        if not d.enabled:
            continue
        modbus = isinstance(d, ModbusDevice)
        for p in d.points:
            reg = None
            if modbus:
                off = _bit_offset(p) if p.type == "bool" else p.offset
                k = (p.table, p.address, p.type, p.word_order, p.byte_order, p.scale, off,
                     copysign(1.0, p.scale), copysign(1.0, off))  # -0.0 is kept apart from 0.0 (float32 images)
                reg = layouts.get(k)
                if reg is None:
                    reg = layouts[k] = RegisterLayout(table=k[0], address=k[1], type=k[2], word_order=k[3],
                                                      byte_order=k[4], scale=k[5], offset=k[6])
            pts.append(SimPoint(device=d.name, name=p.name, signal=firmware_signal(p), faults=list(p.faults),
                                deadband=p.deadband, register=reg))
    return pts


def _bit_offset(p) -> float:
    """A bool register shows ``state - offset != 0``; a value_map {0: a, 1: a+1} (e.g. open=1/closed=2
    on one auxiliary contact) means the bit is set for the higher code, so the offset is ``a``."""
    vm = p.value_map
    if not vm:
        return p.offset
    if set(vm) == {0, 1} and vm[1] == vm[0] + 1:
        return float(vm[0])
    raise ValueError(
        f"point {p.name!r}: a bool register can only carry value_map {{0: n, 1: n+1}} (e.g. {{0: 1, 1: 2}}), got {vm}"
    )


def build_firmware(cfg: Config, seed: int = 0) -> Firmware:
    return Firmware.of_plan(firmware_plan(cfg, seed))


def firmware_plan(cfg: Config, seed: int = 0) -> Plan:
    """The compiled firmware of every enabled device of the site (no models kept)."""
    check_seed(seed)
    plant = cfg.plant.runtime() if cfg.plant is not None else None
    return compile_plan(*plan_inputs(cfg), seed=seed, table_sizes=plan_sizes(cfg), plant=plant)


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PlanError(f"seed must be an integer, got {seed!r}")


def plan_inputs(cfg: Config) -> tuple[list[SimPoint], dict[str, list]]:
    """The firmware's points and load groups of the site's enabled devices (:func:`compile_plan`'s first two
    arguments); a site read in parts (devices/emusite.py) joins those of its parts in file order."""
    return sim_points(cfg), {d.name: list(d.groups) for d in cfg.devices if d.enabled and d.groups}


def plan_sizes(cfg: Config) -> dict[str, dict[str, int]]:
    """The table sizes the enabled Modbus devices set (:func:`compile_plan`'s ``table_sizes``)."""
    return {d.name: dict(d.modbus.tables) for d in cfg.devices if d.enabled and isinstance(d, ModbusDevice) and d.modbus.tables}


@dataclass(slots=True)
class RunningDevice:
    cfg: Any  # the device's model, or its Endpoint (devices/emusite.py)
    server: Any
    port: int
    update: Callable[[str, Any, int, float], None] | None = None  # event-driven devices only
    indexes: list[int] = field(default_factory=list)  # event-driven devices only


class Emulator:
    """``async with Emulator(cfg) as emu:`` — devices listening, firmware ticking.

    ``cfg`` is the site's config model, or an :class:`~devices.emusite.EmulatedSite` (compact
    tables, no model: ``emu.cfg`` is then None, the site's seed is used and its devices are the
    ones served; the fault API needs the model or the site's ``faults`` tables)."""

    def __init__(self, cfg: Config | EmulatedSite, seed: int = 0, tick: float = 0.1, skip: Callable[[str], None] | None = None,
                 only: set[str] | None = None, sim_time: Callable[[int], float] | None = None,
                 on_tick: Callable[[int, float], Awaitable[None]] | None = None, hold: bool = False) -> None:
        """``sim_time(k)`` gives the firmware's time at tick k (default: the wall clock); ``on_tick(k, s)``
        runs just before tick k is computed (scenario timelines); ``hold`` keeps the firmware at tick 0
        until :meth:`go`."""
        self.cfg: Config | None = None if isinstance(cfg, EmulatedSite) else cfg
        # without the model, what the fault API resolves targets over (emusite.load(faults=True))
        self.site_tables = cfg.faults if isinstance(cfg, EmulatedSite) else None
        self.tick_period = tick
        self.sim_time = sim_time
        self.on_tick = on_tick
        self.k = 0
        self.t0_wall = 0.0
        self._go = asyncio.Event()
        if not hold:
            self._go.set()
        if isinstance(cfg, EmulatedSite):
            self.fw = Firmware.of_plan(cfg.plan)
            entries: list[tuple[int, Any]] = cfg.devices
        else:
            self.fw = build_firmware(cfg, seed)
            entries = list(enumerate(cfg.devices))
        self.devices: dict[str, RunningDevice] = {}
        self.skipped: dict[str, str] = {}
        self._skip = skip or (lambda msg: log.warning("%s", msg))
        self._only = only
        self._task: asyncio.Task | None = None
        self._by_name = {d.name: (i, d) for i, d in entries}  # start-up linear in devices
        self._event_driven = 0  # running devices told about changes; none (all Modbus): no per-tick loop
        # firmware index → (device, point) of event-driven devices' points (the firmware orders points its own
        # way, derived signals last); filled as they start: polled devices need none (~200 B a point)
        self._names: dict[int, tuple[str, str]] = {}

    def _time_of(self, k: int) -> float:
        return self.sim_time(k) if self.sim_time is not None else time.time()

    def go(self) -> float:
        """Start a held clock: tick 0 is now."""
        self.t0_wall = time.time()
        self._go.set()
        return self.t0_wall

    def serves(self, name: str) -> bool:
        """Whether this emulator runs device ``name`` (enabled, and picked by ``only``/``--device``)."""
        entry = self._by_name.get(name)
        return entry is not None and entry[1].enabled and (self._only is None or name in self._only)

    async def start(self) -> None:
        self.k = 0
        self.t0_wall = time.time()
        self.fw.tick(self._time_of(0))
        for name in [n for n in self._by_name if self.serves(n)]:
            await self.start_device(name)
        self._task = asyncio.create_task(self._ticker(), name="firmware-tick")

    async def start_device(self, name: str) -> RunningDevice | None:
        i, d = self._by_name[name]
        try:
            server = await emulated(d.protocol).start(  # type: ignore[attr-defined]
                d, lambda point, value, _d=d.name: self.apply_command(_d, point, value), self.fw)
        except DeviceUnavailable as e:
            self.skipped[d.name] = str(e)
            self._skip(f"emulator: skipping device {d.name} ({d.protocol}): {e}")  # type: ignore[attr-defined]
            return None
        except OSError as e:  # the port is taken (or the address is not ours): name the device and the fix
            raise OSError(f"device {d.name} ({d.protocol}) cannot listen on {d.host}:{d.port}: "  # type: ignore[attr-defined]
                          f"{e.strerror or e}; stop what uses the port or change devices[{i}].port") from None
        port = server.port if isinstance(server.port, int) and server.port else d.port
        # what EventDriven (a runtime Protocol) checks, without its ~60 µs isinstance per device
        update = getattr(server, "update", None)
        rd = RunningDevice(d, server, port, update=update if callable(update) else None)
        self.devices[d.name] = rd
        self._event_driven += rd.update is not None
        if rd.update is not None:  # give event-driven devices their initial values
            rd.indexes = [self.fw.index(d.name, p.name) for p in d.points]
            for i, p in zip(rd.indexes, d.points):
                self._names[i] = (d.name, p.name)
                rd.update(p.name, self.fw.value(i), self.fw.quality(i), time.time())
        log.info("emulated %s %s (%s) on %s:%d", d.kind, d.name, d.protocol, d.host, rd.port)  # type: ignore[attr-defined]
        return rd

    async def stop_device(self, name: str) -> None:
        rd = self.devices.pop(name, None)
        if rd is not None:
            self._event_driven -= rd.update is not None
            r = rd.server.stop()
            if asyncio.iscoroutine(r):
                await r

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for name in list(self.devices):
            await self.stop_device(name)
        self.fw.stop() if getattr(self.fw, "running", False) else None

    async def __aenter__(self) -> "Emulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def apply_command(self, device: str, point: str, value: float | int) -> bool:
        """A device received an operate/write: the firmware takes it as the point's new state."""
        self.fw.set_state(self.fw.index(device, point), value)
        return True

    async def _ticker(self) -> None:
        """Tick k runs at ``start + k*tick`` (absolute schedule) and computes the firmware at ``_time_of(k)``."""
        await self._go.wait()
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            self.k += 1
            await asyncio.sleep(max(0.0, start + self.k * self.tick_period - loop.time()))
            if self.on_tick is not None:
                await self.on_tick(self.k, self.k * self.tick_period)
            self.fw.tick(self._time_of(self.k))
            self._push_changed(time.time())

    def _push_changed(self, now: float) -> None:
        """Tell event-driven devices (DNP3, IEC 61850) about every point the tick changed.

        Polled devices (Modbus) read the firmware's registers when asked: with only those running
        nothing is looped over (the change flags stay set; a device started later gets all of them)."""
        if not self._event_driven:
            return
        for i in self.fw.take_changed():
            entry = self._names.get(i)
            if entry is None:  # hidden firmware channels (load groups)
                continue
            rd = self.devices.get(entry[0])
            if rd is not None and rd.update is not None:
                rd.update(entry[1], self.fw.value(i), self.fw.quality(i), now)
