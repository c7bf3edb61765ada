"""Bounded, seeded fuzz campaigns on every listening port of the emulator, with the gateway
polling the same devices: the process lives, the other devices keep GOOD quality, the fuzzed
device is GOOD again afterwards, and file descriptors return to their baseline.

Cases per port are printed (``-s``) for the report: ``fuzz <protocol>: N cases ...``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from devices.dnp3.outstation import Dnp3Outstation
from devices.lab import Lab
from gateway.config import Config, load_config
from tests.hardening.fuzz import cases, run_case
from tests.support.mosquitto import free_port
from tests.support.wait import poll

ROOT = Path(__file__).resolve().parents[2]
KEEP = ("pqm-inc1", "pqm-inc2", "rtu1", "ied-f1", "ied-f2")
CASES = 250
SEED = 14


def site() -> Config:
    """The shipped example site cut to two Modbus meters, its DNP3 RTU and two IEDs, on free ports."""
    raw = load_config(ROOT / "configs" / "primary-substation.yaml").model_dump(mode="json")
    raw["devices"] = [d for d in raw["devices"] if d["name"] in KEEP]
    for d in raw["devices"]:
        d["port"] = free_port()
    return Config.model_validate(raw)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _until(cond, timeout: float) -> bool:  # noqa: ANN001
    return await poll(cond, timeout, 0.1)

async def _campaign(port: int, protocol: str, seed: int) -> tuple[int, int]:
    held: list[asyncio.StreamWriter] = []
    todo = cases(protocol, seed, CASES)
    for c in todo:
        await run_case(port, c, held)
    n_held = len(held)
    for w in held:
        w.close()
    return len(todo), n_held


def _good_points(lab: Lab, cfg: Config, since: float) -> set[str]:
    out = set()
    for d in cfg.devices:
        for p in d.points:
            ref = f"{d.name}/{p.name}"
            if any(s.quality.get("validity") == "GOOD" for s in lab.samples(ref, since)):
                out.add(ref)
    return out


@pytest.mark.parametrize("target", ["pqm-inc1", "rtu1", "ied-f1"])
async def test_fuzz_campaign_on_a_device_port(target: str, mosquitto, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = site()
    dev = next(d for d in cfg.devices if d.name == target)
    async with asyncio.timeout(240):
        async with Lab(cfg, broker=mosquitto.url, seed=SEED) as lab:
            assert await _until(lambda: len(_good_points(lab, cfg, 0)) >= sum(len(d.points) for d in cfg.devices) * 0.9, 60)
            await asyncio.sleep(2.0)
            watched = {p for p in _good_points(lab, cfg, time.time() - 1.5) if not p.startswith(target + "/")}
            assert watched, "no GOOD points on the other devices to watch"
            base, rss0 = fds(), rss_mb()
            t0 = time.time()
            n, n_held = await _campaign(dev.port, dev.protocol, SEED)
            extra = ""
            if dev.protocol == "dnp3":  # the gateway keeps the association: fuzz the parser on a second outstation too
                parser_dev = dev.model_copy(update={"port": 0, "dnp3": dev.dnp3.model_copy(update={"second_master": "replace"})})
                os_ = Dnp3Outstation(parser_dev)  # every fuzz connection takes the session, so every frame is parsed
                await os_.start()
                try:
                    n2, _ = await _campaign(os_.port, "dnp3", SEED + 1)
                    st = os_.stats
                    assert st["connections"] >= CASES * 0.9 and st["link"]["malformed"] + st["malformed_requests"] > 50
                finally:
                    await os_.stop()
                extra = f"; parser campaign {n2} cases, {st['malformed_requests']} malformed requests, {st['link']['malformed']} malformed frames"
            t1 = time.time()
            with capsys.disabled():
                print(f"\nfuzz {dev.protocol} ({target}): {n} cases, {n_held} connections held{extra}")
            # the process lives: every device still served, the gateway still running
            assert set(lab.emu.devices) == set(KEEP)
            # the other devices kept GOOD quality throughout
            await asyncio.sleep(2.0)
            bad = [(s.key, s.quality) for s in lab.recorder.samples
                   if t0 <= s.at <= time.time() and s.quality.get("validity") != "GOOD"
                   and any(lab.site.point(w) == s.key for w in watched)]
            assert bad == [], bad[:5]
            fresh = _good_points(lab, cfg, t1)
            assert await _until(lambda: watched <= _good_points(lab, cfg, t1), 30), watched - fresh
            # the fuzzed device is GOOD again
            mine = {f"{target}/{p.name}" for p in dev.points}
            assert await _until(lambda: mine & _good_points(lab, cfg, time.time() - 5), 30)
            # descriptors back to the baseline (connections closed on both sides)
            assert await _until(lambda: fds() <= base + 2, 30), (fds(), base)
            assert rss_mb() - rss0 < 40, (rss0, rss_mb())  # no growth per case (250 cases would show it)
