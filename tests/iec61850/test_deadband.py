"""Deadbands of measured values (IEC 61850-7-3 MV/CMV db, zeroDb): a slowly varying value is reported
only when it moves beyond db × rangeC span from the last reported mag; instMag follows every sample."""

from __future__ import annotations

import asyncio

from gateway.southbound.iec61850 import MmsSource
from tests.iec61850.browse import Browser
from tests.iec61850.conftest import fast_backoff, running
from tests.iec61850.support import IedProcess, ied_device


async def test_slow_ramp_is_reported_only_beyond_db():
    dev = ied_device(db=1000)  # 1 % of the Hz rangeC 45..65 → 0.2 Hz
    with IedProcess(dev) as ied, Browser("127.0.0.1", dev.port) as b:
        assert b.read("F1PROT/MMXU1.Hz.db", "CF") == 1000
        span = b.read("F1PROT/MMXU1.Hz.rangeC.max.f", "CF") - b.read("F1PROT/MMXU1.Hz.rangeC.min.f", "CF")
        band = 1000 * 1e-5 * span
        assert abs(band - 0.2) < 1e-9
        src = MmsSource(dev, fast_backoff())
        async with running(src) as sink:
            ied.update("F", 50.0)
            await sink.wait(lambda: src.connected and [r for r in sink.of("F") if r.value == 50.0], what="GI")
            sink.readings.clear()
            samples = [round(50.0 + 0.03 * i, 2) for i in range(1, 35)]  # 50.03 … 51.02 in 0.03 Hz steps
            for v in samples:
                ied.update("F", v)
                inst = b.read("F1PROT/MMXU1.Hz.instMag.f", "MX")
                assert abs(inst - v) < 1e-4  # instMag: every sample
            await asyncio.sleep(0.5)
            got = [round(r.value, 4) for r in sink.of("F") if r.event]
        # the reference is the last reported mag: 50.0 → 50.21 → 50.42 → 50.63 → 50.84
        assert got == [50.21, 50.42, 50.63, 50.84]
        assert abs(b.read("F1PROT/MMXU1.Hz.mag.f", "MX") - 50.84) < 1e-4
        assert abs(b.read("F1PROT/MMXU1.Hz.instMag.f", "MX") - 51.02) < 1e-4


async def test_zero_deadband_clamps_small_values_to_zero():
    dev = ied_device(db=0)
    data = dev.model_dump()
    q = next(p for p in data["points"] if p["name"] == "Q")
    q["zero_db"], q["range"] = 1000, (-1000.0, 1000.0)  # |Q| ≤ 1 % of 2000 → 0
    dev = type(dev).model_validate(data)
    with IedProcess(dev) as ied, Browser("127.0.0.1", dev.port) as b:
        ied.update("Q", 15.0)
        assert b.read("F1PROT/MMXU1.TotVAr.mag.f", "MX") == 0.0
        assert b.read("F1PROT/MMXU1.TotVAr.instMag.f", "MX") == 15.0
        ied.update("Q", -25.0)
        assert b.read("F1PROT/MMXU1.TotVAr.mag.f", "MX") == -25.0
        assert b.read("F1PROT/MMXU1.TotVAr.zeroDb", "CF") == 1000
        assert b.read("F1PROT/MMXU1.TotVAr.rangeC.min.f", "CF") == -1000.0
