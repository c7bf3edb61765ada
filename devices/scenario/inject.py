"""Apply and clear faults on a running Emulator: the one engine behind scenarios, the live
API and ``Lab.inject``.

Data faults go into the firmware (several per point stack in the order set; clearing one
re-applies the rest, which restarts a remaining drift/spike/oscillation's time origin).
Comms faults of one device are merged into that device's fault hook (Modbus:
``server.faults``; DNP3: ``server.faults`` + the one-shot IIN flags; IEC 61850:
``server.faults``; any protocol: ``disconnect`` stops the device and starts it again on
clear, so connections are refused meanwhile). ``association_abort`` is an action: applied
once on inject (every MMS association dropped, new ones accepted), nothing to undo.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from devices.contract import emulated
from devices.scenario.faults import DATA_KINDS, FAULT, NETWORK_KINDS, Fault
from devices.scenario.model import Target
from devices.scenario.plant_faults import PLANT_KINDS, fault_args, value_of
from devices.scenario.resolve import Site, TargetError

log = logging.getLogger(__name__)

#: ``await hook("inject" | "clear", link_name, fault)``: a network fault on a profile's emulated link
LinkHook = Callable[[str, str, Any], Awaitable[Any]]


@dataclass
class Active:
    id: str
    target: Target
    fault: Any
    points: list[str]
    devices: list[str]
    since: float
    until: float | None = None
    restore: dict[str, float] = field(default_factory=dict)  # set_state: value before

    def describe(self) -> dict:
        return {
            "id": self.id, "target": str(self.target), "fault": self.fault.model_dump(), "points": self.points,
            "devices": self.devices, "since": self.since, "until": self.until,
        }


class Injector:
    """``await inj.inject(Target(device="rtu1"), {"kind": "silent"}, duration=5)``; ``await inj.clear(id)``."""

    def __init__(self, emu: Any, site: Site | None = None, links: LinkHook | None = None) -> None:
        """``links``: applies network faults to the profile's links (``await links(action, link, fault)``);
        without it the site refuses them (no profile)."""
        self.emu = emu
        self.links = links
        # an emulator built from the config model resolves over it; one built from compact tables
        # (`gridgate emulate`, devices/emusite.py) over the tables its loader handed back
        self.site = site or (Site.of(emu.cfg) if emu.cfg is not None else Site(emu.site_tables))
        self.active: dict[str, Active] = {}
        self.log: list[dict] = []  # every inject/clear, in order, with wall time
        self._ids = itertools.count(1)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._stopped: set[str] = set()

    async def inject(self, target: Target | dict, fault: Fault | dict, duration: float | None = None,
                     fid: str | None = None) -> Active:
        t = target if isinstance(target, Target) else Target.model_validate(target)
        f = FAULT.validate_python(fault) if isinstance(fault, dict) else fault
        self.site.check(t, f.kind, f)
        fid = fid or f"f{next(self._ids)}"
        if fid in self.active:
            raise TargetError(f"fault id {fid!r} is already active; clear it first")
        now = time.time()
        a = Active(fid, t, f, [], [], now, now + duration if duration else None)
        if f.kind in DATA_KINDS or f.kind == "set_state" or f.kind in PLANT_KINDS:
            a.points = self.site.points(t)
        elif f.kind in NETWORK_KINDS:
            a.points = self.site.keys()  # a WAN link carries every value
        else:
            a.devices = self.site.devices(t)
        self.active[fid] = a
        try:
            await self._apply(a)
        except Exception:
            self.active.pop(fid, None)
            raise
        self.log.append({"at": now, "action": "inject", **a.describe()})
        if duration:
            loop = asyncio.get_running_loop()
            self._timers[fid] = loop.call_later(duration, lambda: loop.create_task(self.clear(fid)))
        log.info("fault %s injected: %s on %s", fid, f.kind, t)
        return a

    async def clear(self, fid: str) -> Active:
        a = self.active.pop(fid, None)
        if a is None:
            raise KeyError(f"no active fault {fid!r}; active: {', '.join(self.active) or 'none'}")
        h = self._timers.pop(fid, None)
        if h:
            h.cancel()
        await self._unapply(a)
        self.log.append({"at": time.time(), "action": "clear", **a.describe()})
        log.info("fault %s cleared", fid)
        return a

    async def clear_all(self) -> list[str]:
        ids = list(self.active)
        for fid in reversed(ids):
            await self.clear(fid)
        return ids

    def list(self) -> list[dict]:
        return [a.describe() for a in self.active.values()]

    # ------------------------------------------------------------ apply

    async def _apply(self, a: Active) -> None:
        fw, k = self.emu.fw, a.fault.kind
        if k in NETWORK_KINDS:
            if self.links is None:
                raise TargetError(f"fault {k!r} needs a network profile (--profile NAME)")
            await self.links("inject", a.target.link, a.fault)
        elif k == "set_state":
            for key in a.points:
                i = fw.index(*key.split("/", 1))
                a.restore[key] = fw.value(i)
                fw.set_state(i, a.fault.value)
        elif k in PLANT_KINDS:  # a physical event: the plant changes, every device sees it
            for key in a.points:
                fw.plant_fault(fw.index(*key.split("/", 1)), k, value_of(a.fault, clear=False), **fault_args(a.fault))
        elif k in DATA_KINDS:
            for key in a.points:
                self._reapply_data(key)
        else:
            for d in a.devices:
                await self._reapply_device(d)
                if k == "association_abort" and (rd := self.emu.devices.get(d)) is not None:
                    rd.server.abort_associations()

    async def _unapply(self, a: Active) -> None:
        fw = self.emu.fw
        if a.fault.kind in NETWORK_KINDS:
            if self.links is not None:
                await self.links("clear", a.target.link, a.fault)
        elif a.fault.kind == "set_state":  # clearing a field event puts the state back (a step with a duration)
            for key, v in a.restore.items():
                fw.set_state(fw.index(*key.split("/", 1)), v)
        elif a.fault.kind in PLANT_KINDS:
            for key in a.points:
                fw.plant_fault(fw.index(*key.split("/", 1)), a.fault.kind, value_of(a.fault, clear=True), **fault_args(a.fault))
        elif a.fault.kind in DATA_KINDS:
            for key in a.points:
                self._reapply_data(key)
        else:
            for d in a.devices:
                await self._reapply_device(d)

    def _reapply_data(self, key: str) -> None:
        fw = self.emu.fw
        i = fw.index(*key.split("/", 1))
        fw.reset_faults(i)  # the configured faults (the plan's), then the active ones
        for a in self.active.values():
            if a.fault.kind in DATA_KINDS and key in a.points:
                fw.set_fault(i, a.fault)

    async def _reapply_device(self, name: str) -> None:
        faults = [a.fault for a in self.active.values() if name in a.devices]
        proto = self.site.protocol[name]
        down = any(f.kind == "disconnect" for f in faults)
        spec = emulated(proto)
        if spec.RESTART_ON_DISCONNECT and self.emu.serves(name):  # a device left out (--device) stays out
            if down and name not in self._stopped:
                port = self.site.port_of(name)
                if port == 0:
                    raise TargetError(
                        f"disconnect on {name}: its config port is 0 (ephemeral), so the restarted device would come "
                        "back on another port; give it a fixed port (devices.scenario.ports.with_free_ports)"
                    )
                await self.emu.stop_device(name)
                self._stopped.add(name)
            elif not down and name in self._stopped:
                self._stopped.discard(name)
                await self.emu.start_device(name)
        rd = self.emu.devices.get(name)
        if rd is None:
            return
        spec.apply_faults(rd.server, faults)
