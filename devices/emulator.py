"""Run every enabled device of a site config in one asyncio process, fed by the simulated firmware.

The firmware (firmware_sim) computes all points at a fixed tick; Modbus devices read its
register images directly, event-driven devices (DNP3 outstations, IEC 61850 IEDs, IEC 104 RTUs)
are told about their changed points after a tick while someone listens
to them (see ``watch_listeners`` in devices/contract.py). Commands arriving at a device go back
into the firmware as state changes, so the next tick shows them on every protocol.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
import time
from array import array
from dataclasses import dataclass, field
from math import copysign
from typing import Any, Awaitable, Callable

from devices.contract import DeviceUnavailable, emulated
from devices.emusite import EmulatedSite
from devices.sharedlisten import SharedListeners, SharedPortError, shared_ports, why_not_shared
from firmware_sim import Firmware, PlanError, RegisterLayout, SimPoint
from firmware_sim.plan import Plan, compile_plan
from gateway.config import Config
from gateway.protocols.modbus.config import ModbusDevice
from gateway.site.openfiles import BASE, ensure_open_files, raise_hint
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
    indexes: list[int] = field(default_factory=list)  # event-driven devices only: firmware index per point
    names: list[str] = field(default_factory=list)  # their point names, in the same order
    sel: array = field(default_factory=lambda: array("i"))  # ``indexes`` as the firmware takes them

    def push(self, items: list[tuple[str, Any, int, float]]) -> None:
        """Hand one tick's changes of this device to it, point by point. Not its ``update_many`` (IEC 61850:
        one lock for the tick) yet: that changes which members libiec61850 puts in a buffered report's
        entries (tests/iec61850/test_brcb_soak.py counted more events than changes for Ib and Ic)."""
        update = self.update
        if update is not None:
            for item in items:
                update(*item)


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
        #: the enabled devices of the whole site (an EmulatedSite holds only those this process serves)
        self._known = cfg.known if isinstance(cfg, EmulatedSite) else [d.name for d in cfg.devices if d.enabled]
        self.listeners = SharedListeners()  # the shared ports, planned by start()
        self._want_files = 0
        self.devices: dict[str, RunningDevice] = {}
        self.skipped: dict[str, str] = {}
        self._skip = skip or (lambda msg: log.warning("%s", msg))
        self._only = only
        self._task: asyncio.Task | None = None
        self._by_name = {d.name: (i, d) for i, d in entries}  # start-up linear in devices
        # event-driven devices someone listens to (a master connected, or a device that cannot tell): only
        # their points are taken each tick; the others' change flags stay set in the firmware until they are
        self._listened: dict[str, RunningDevice] = {}
        self._sel = array("i")  # the listened devices' firmware indices, device after device
        self._owner: list[RunningDevice] = []  # per position of _sel: its device and point name
        self._pname: list[str] = []
        self._stale = False  # _listened changed: rebuild _sel before the next take
        self._loop_thread = 0
        self._loop: asyncio.AbstractEventLoop | None = None

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
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self.k = 0
        self.t0_wall = time.time()
        self.fw.tick(self._time_of(0))
        names = [n for n in self._by_name if self.serves(n)]
        self.listeners = SharedListeners(self._plan_shared(names))
        self._open_files(len(names))
        for name in names:
            await self.start_device(name)
        self._task = asyncio.create_task(self._ticker(), name="firmware-tick")

    def _plan_shared(self, names: list[str]) -> dict[int, list[str]]:
        """The ports whose devices (each on its own 127.x address) share one listening socket
        (devices/sharedlisten.py): only when this process serves every enabled device of the site (a
        ``--device`` subset or a ``--processes`` shard leaves some of a port to another process)."""
        if set(names) != set(self._known):
            return {}
        shares: dict[str, bool] = {}
        rows = []
        for name in names:
            d = self._by_name[name][1]
            if d.protocol not in shares:
                shares[d.protocol] = bool(getattr(emulated(d.protocol), "SHARES_LISTENERS", False))
            rows.append((name, str(d.host), d.port, shares[d.protocol]))
        ports = shared_ports(rows)
        if ports and (why := why_not_shared()) is not None:
            log.warning("emulator: devices on 127.x addresses sharing a port get a listening socket each: %s", why)
            return {}
        return ports

    def _open_files(self, n: int) -> None:
        """Room for the listening sockets of ``n`` devices (one per shared port, else one per device; else a clear
        error before any is opened) and, where the hard limit allows, one master connection each (else a warning
        saying how many fit)."""
        ports = self.listeners.ports
        sharing = sum(len(v) for v in ports.values())
        listen = n - sharing + len(ports)
        want = self._want_files = listen + n + BASE
        how = (f"{listen:,} listening sockets ({len(ports):,} shared by {sharing:,} devices on 127.x addresses), "
               if ports else "a listening socket each, ")
        soft = ensure_open_files(
            listen + BASE, want, f"emulating {n:,} devices ({how}one more per connected master)",
            f"{raise_hint(want)}, or run fewer devices per process (`gridgate emulate --processes N`, or `--device`)"
            + ("" if ports else ", or give devices on one port their own 127.x addresses (one listening socket per port)")
            + ".")
        if soft < want:
            self._skip(f"emulator: open-file limit {soft:,} (hard limit): room for about {soft - listen - BASE:,} "
                       f"master connections to {n:,} devices; further masters get no answer until others close "
                       f"({raise_hint(want)})")

    async def start_device(self, name: str) -> RunningDevice | None:
        i, d = self._by_name[name]
        try:
            spec = emulated(d.protocol)  # type: ignore[attr-defined]
            shared = {"listeners": self.listeners} if getattr(spec, "SHARES_LISTENERS", False) else {}
            server = await spec.start(d, lambda point, value, _d=d.name: self.apply_command(_d, point, value), self.fw,
                                      **shared)
        except DeviceUnavailable as e:
            self.skipped[d.name] = str(e)
            self._skip(f"emulator: skipping device {d.name} ({d.protocol}): {e}")  # type: ignore[attr-defined]
            return None
        except SharedPortError:
            raise  # names the port, its devices and the fix
        except OSError as e:  # the port is taken (or the address is not ours): name the device and the fix
            fix = (raise_hint(self._want_files or 2 * len(self._by_name) + BASE) if e.errno in (errno.EMFILE, errno.ENFILE)
                   else f"stop what uses the port or change devices[{i}].port")
            raise OSError(f"device {d.name} ({d.protocol}) cannot listen on {d.host}:{d.port}: "  # type: ignore[attr-defined]
                          f"{e.strerror or e}; {fix}") from None
        port = server.port if isinstance(server.port, int) and server.port else d.port
        # what EventDriven (a runtime Protocol) checks, without its ~60 µs isinstance per device
        update = getattr(server, "update", None)
        rd = RunningDevice(d, server, port, update=update if callable(update) else None)
        self.devices[d.name] = rd
        if rd.update is not None:  # give event-driven devices their initial values
            rd.names = [p.name for p in d.points]
            rd.indexes = [self.fw.index(d.name, n) for n in rd.names]
            rd.sel = array("i", rd.indexes)
            self.fw.take_changed_in(rd.sel)  # what they get now is what the flags were set for
            values, quality = self.fw.outputs()
            now = time.time()
            rd.push([(n, values[i], quality[i], now) for n, i in zip(rd.names, rd.indexes)])
            watch = getattr(server, "watch_listeners", None)
            # a device that cannot tell whether anyone listens (IEC 61850: its buffered reports record
            # changes with no client connected) is told about every change
            if not callable(watch) or watch(lambda on, _rd=rd: self._listeners(_rd, on)):
                self._listen(rd, True)
        log.info("emulated %s %s (%s) on %s:%d", d.kind, d.name, d.protocol, d.host, rd.port)  # type: ignore[attr-defined]
        return rd

    async def stop_device(self, name: str) -> None:
        rd = self.devices.pop(name, None)
        if rd is not None:
            self._listen(rd, False)
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

    def _listeners(self, rd: RunningDevice, on: bool) -> None:
        """Device ``rd`` got its first listener (``on``) or lost its last; called by the device, on this loop
        (DNP3) or on its stack's thread (IEC 104). A newcomer first gets every point changed since the device
        was last listened to, before its first request reaches the stack (so a general interrogation or
        integrity poll returns current values); from the next tick on it gets each tick's changes."""
        if self.devices.get(rd.cfg.name) is not rd:  # stopped (its connections close after), or still starting
            return
        if on:
            self._catch_up(rd)
        if threading.get_ident() == self._loop_thread:
            self._listen(rd, on)
        elif self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._listen, rd, on)
            except RuntimeError:  # the loop is closed: the emulator has stopped
                pass

    def _catch_up(self, rd: RunningDevice) -> None:
        pos = self.fw.take_changed_in(rd.sel)
        if pos:
            values, quality = self.fw.outputs()
            names, idx, now = rd.names, rd.indexes, time.time()
            rd.push([(names[k], values[idx[k]], quality[idx[k]], now) for k in pos])

    def _listen(self, rd: RunningDevice, on: bool) -> None:
        name = rd.cfg.name
        if on and self.devices.get(name) is rd:
            self._listened[name] = rd
        elif self._listened.get(name) is rd:
            del self._listened[name]
        else:
            return
        self._stale = True

    def _select(self) -> None:
        self._stale = False
        sel, owner, pname = array("i"), [], []
        for rd in self._listened.values():
            sel.extend(rd.sel)
            owner.extend([rd] * len(rd.sel))
            pname.extend(rd.names)
        self._sel, self._owner, self._pname = sel, owner, pname

    def _push_changed(self, now: float) -> None:
        """Tell the event-driven devices someone listens to about the points the tick changed.

        The firmware checks the change flags of their points only (one C call); nothing else is looped
        over, so a tick costs what is read: with only polled devices (Modbus, which read the register
        images when asked) or no listener anywhere, nothing. Unlistened points keep their flags set,
        and a device taken up later gets them all (``_catch_up``)."""
        if self._stale:
            self._select()
        if not self._sel:
            return
        pos = self.fw.take_changed_in(self._sel)
        if not pos:
            return
        values, quality = self.fw.outputs()
        sel, owner, pname = self._sel, self._owner, self._pname
        rd = owner[pos[0]]
        batch: list[tuple[str, Any, int, float]] = []
        for k in pos:
            if owner[k] is not rd:
                rd.push(batch)
                rd, batch = owner[k], []
            i = sel[k]
            batch.append((pname[k], values[i], quality[i], now))
        rd.push(batch)
