"""The whole example site (all nine devices: Modbus meters, DNP3 RTU, six IEC 61850 IEDs) under the
shipped one-step feeder fault, on the scenario runner over real Mosquitto.

A second MQTT client records every published value beside the runner's own recorder: Kirchhoff
holds on those values before the fault and after the trip (the incomers lose F1's load), the
SOE (start → operate → breaker open → current 0) comes out of the plant in order, and the RTU's
AVC state points agree with each other.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from devices.scenario.recorder import Recorder, Sample
from devices.scenario.resolve import load_scenario
from devices.scenario.runner import run_plan
from gateway.config import Config, load_config
from tests.scenario.helpers import EXAMPLE, ROOT

FEEDERS = [f"ied-f{k}/P" for k in range(1, 7)]
INCOMERS = ["pqm-inc1/P", "pqm-inc2/P"]
TRANSFORMERS = ["rtu1/T1_P", "rtu1/T2_P"]
FAULT_AT = 5.0


def full_site(tmp: Path) -> Path:
    """The example, every device on a free port, every source polled each second (the RTU reports by exception)."""
    from devices.scenario.ports import with_free_ports

    data = with_free_ports(load_config(EXAMPLE)).model_dump(mode="json", by_alias=True, exclude_none=True)
    for d in data["devices"]:
        d["poll_interval"] = 1.0
        if d["protocol"] == "dnp3":
            d["dnp3"]["event_poll_interval"] = 1.0
    Config.model_validate(data)
    p = tmp / "site.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def at(samples: list[Sample], key: str, t: float) -> float:
    """The value of ``key`` current at wall time ``t`` (its last sample before)."""
    vals = [s.value for s in samples if s.key == key and s.at <= t]
    assert vals, f"{key}: nothing published before the check"
    return float(vals[-1])


def kirchhoff(samples: list[Sample], t: float) -> tuple[float, float]:
    feeders = sum(at(samples, k, t) for k in FEEDERS)
    inc = sum(at(samples, k, t) for k in INCOMERS)
    tx = sum(at(samples, k, t) for k in TRANSFORMERS)
    assert feeders > 1000, feeders  # kW: six feeders of a GB primary
    assert abs(inc - feeders) / feeders < 0.03, (inc, feeders)  # incomers carry the feeders (switches lossless)
    assert abs(tx - feeders) / feeders < 0.03, (tx, feeders)  # transformers: + losses, within the RTU's deadband
    return feeders, inc


async def test_full_example_site_feeder_fault_end_to_end(tmp_path, mosquitto):
    site = full_site(tmp_path)
    scn = yaml.safe_load((ROOT / "configs" / "scenarios" / "feeder-fault-trip.yaml").read_text())
    scn["config"] = str(site)
    scn["duration"] = "14s"  # time after the trip for every poll to settle
    path = tmp_path / "feeder-fault-trip.yaml"
    path.write_text(yaml.safe_dump(scn, sort_keys=False))
    plan = load_scenario(path)
    assert len(plan.cfg.devices) == 9 and sum(len(d.points) for d in plan.cfg.devices) == 113
    prefix = f"{plan.cfg.gateway.northbound.topic_prefix}/{plan.cfg.gateway.id}/#"
    async with asyncio.timeout(150), Recorder(mosquitto.url, prefix, plan.site.mrid_to_key) as rec:
        res = await run_plan(plan, broker=mosquitto.url, warmup=40)
    rep = res.report
    assert res.errors == [] and rep["passed"], rep["expectations"]
    soe = next(e for e in rep["expectations"] if e["where"] == "expect[0]")
    seqs = [int(x) for x in soe["detail"].removeprefix("seq ").split(", ")]
    assert len(seqs) == 4 and seqs == sorted(seqs)  # start, operate, breaker open, current 0: in that order

    samples = rec.samples
    every = {f"{d.name}/{p.name}" for d in plan.cfg.devices for p in d.points}
    good = {s.key for s in samples if s.quality.get("validity") == "GOOD"}
    assert every <= good, sorted(every - good)  # every point of every device published, GOOD
    t0 = min(s.at for s in samples if s.key == "ied-f1/Ia" and s.value > 1000) - 0.05  # the fault, on MQTT
    before, inc_before = kirchhoff(samples, t0 - 0.5)
    f1_load = at(samples, "ied-f1/P", t0 - 0.5)
    end = max(s.at for s in samples)
    after, inc_after = kirchhoff(samples, end)  # the trip settled: F1 reads 0, the rest balances
    assert at(samples, "ied-f1/P", end) == 0 and at(samples, "ied-f1/Ia", end) == 0
    assert at(samples, "ied-f1/CB", end) == 1 and at(samples, "rtu1/INC1_CB", end) == 2  # only F1 opened
    assert abs(inc_before - inc_after - f1_load) < 150 + 0.1 * f1_load, (inc_before, inc_after, f1_load)

    # the RTU's AVC relay points follow one plant state
    for t in ("T1", "T2"):
        state = at(samples, f"rtu1/{t}_AVC_STATE", end)
        flags = {f: at(samples, f"rtu1/{t}_AVC_{f}", end) for f in ("IN_BAND", "TIMING", "BLOCKED", "LOCKOUT")}
        assert at(samples, f"rtu1/{t}_AVC_AUTO", end) == 1  # the example starts in auto
        assert state in (1, 2, 3) and flags["LOCKOUT"] == flags["BLOCKED"] == 0, (state, flags)
        assert flags["IN_BAND"] == (state == 1) and flags["TIMING"] == (state == 2)
        raise_, lower = at(samples, f"rtu1/{t}_AVC_RAISE", end), at(samples, f"rtu1/{t}_AVC_LOWER", end)
        assert raise_ + lower == (1 if state in (2, 3) else 0)
