"""A lab for pytest users: emulator + gateway (+ Mosquitto) in-process, faults and waits.

```python
async with Lab("configs/primary-substation.yaml", broker="mosquitto", seed=1) as lab:
    lab.inject("pqm-inc1", {"kind": "silent"}, duration=5)
    await lab.wait_for("pqm-inc1/Ia", quality="INVALID", timeout=3)
```
``broker``: an ``mqtt://`` URL, or ``"mosquitto"`` to start one on a free loopback port
(uses tests/support's launcher, so it is for test runs in a checkout).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

from devices.scenario.clock import ClockedEmulator
from devices.scenario.expect import quality_matches
from devices.scenario.inject import Active, Injector
from devices.scenario.model import Target
from devices.scenario.recorder import Recorder, Sample

GOOD_PROCESS = {"validity": "GOOD", "source": "PROCESS"}


def clean(s: Sample) -> bool:
    """GOOD from the process with no detail flag at all."""
    return s.quality == GOOD_PROCESS
from devices.scenario.resolve import Site
from gateway.config import Config, load_config


class Lab:
    def __init__(self, config: str | Path | Config, broker: str = "mosquitto", seed: int = 0, tick: float = 0.1,
                 gateway: bool = True, api: bool = False, api_state: str | Path | None = None) -> None:
        self.cfg = config if isinstance(config, Config) else load_config(config)
        self.site = Site.of(self.cfg)
        self.broker_arg, self.seed, self.tick = broker, seed, tick
        self.with_gateway, self.with_api, self.api_state = gateway, api, api_state
        self.emu = ClockedEmulator(self.cfg, seed=seed, tick=tick)
        self.injector = Injector(self.emu, self.site)
        self.recorder: Recorder | None = None
        self.gateway = None
        self.api = None
        self._mosq = None
        self._tasks: list[asyncio.Task] = []

    @property
    def broker(self) -> str:
        return self._mosq.url if self._mosq else self.broker_arg

    async def __aenter__(self) -> "Lab":
        if self.broker_arg == "mosquitto":
            from devices.mosquitto import Mosquitto

            self._mosq = Mosquitto().start()
        try:
            prefix = f"{self.cfg.gateway.northbound.topic_prefix}/{self.cfg.gateway.id}/#"
            self.recorder = await Recorder(self.broker, prefix, self.site.mrid_to_key).__aenter__()
            await self.emu.start()
            self.emu.go()
            if self.with_gateway:
                from gateway.app import Gateway, GatewayOptions

                self.gateway = Gateway(self.cfg, GatewayOptions(broker=self.broker, status_interval=1.0))
                await self.gateway.start()
            if self.with_api:
                from devices.faultapi.server import FaultApiServer

                self.api = await FaultApiServer(self.injector, state_file=self.api_state).start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            if not t.done():
                t.cancel()
        if self.api:
            await self.api.stop()
        if self.gateway:
            await self.gateway.stop()
        await self.injector.clear_all()
        await self.emu.stop()
        if self.recorder:
            await self.recorder.__aexit__()
        if self._mosq:
            self._mosq.stop()

    # ------------------------------------------------------------ faults

    def inject(self, target: str | dict | Target, fault: dict, duration: float | None = None,
               fid: str | None = None) -> "asyncio.Task[Active]":
        """Inject now (applied on the next loop turn); await the task for the Active record.

        ``target``: ``"dev/point"``, an mRID, a device name, or a Target dict.
        """
        t = self._target(target)
        task = asyncio.get_running_loop().create_task(self.injector.inject(t, fault, duration, fid))
        self._tasks.append(task)
        return task

    async def clear(self, fid: str | None = None) -> None:
        if fid is None:
            await self.injector.clear_all()
        else:
            await self.injector.clear(fid)

    def _target(self, target: str | dict | Target) -> Target:
        if isinstance(target, Target):
            return target
        if isinstance(target, dict):
            return Target.model_validate(target)
        if target in self.site.device_points:
            return Target(device=target)
        return Target(point=target)

    # ------------------------------------------------------------ observing

    def samples(self, point: str, since: float = 0.0) -> list[Sample]:
        key = self.site.point(point)
        return [s for s in self.recorder.samples if s.key == key and s.at >= since]

    async def wait_for(self, point: str, quality: str | None = None, value: float | None = None,
                       tolerance: float = 1e-6, timeout: float = 5.0, since: float | None = None,
                       match: Callable[[Sample], bool] | None = None) -> Sample:
        """The first published sample of ``point`` (since ``since``, wall time) matching; AssertionError on timeout."""
        key = self.site.point(point)
        since = time.time() if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            for t in self._tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            for s in self.recorder.samples:
                if s.key != key or s.at < since:
                    continue
                if quality is not None and not quality_matches(s.quality, quality):
                    continue
                if value is not None and (not isinstance(s.value, (int, float)) or abs(s.value - value) > tolerance):
                    continue
                if match is not None and not match(s):
                    continue
                return s
            if time.monotonic() >= deadline:
                last = [f"{s.value} {s.quality}" for s in self.samples(point)][-3:]
                raise AssertionError(
                    f"{point}: no sample with quality={quality} value={value} within {timeout:g}s; last: {last or 'none'}"
                )
            await asyncio.sleep(0.02)
