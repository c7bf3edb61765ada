"""The per-protocol comms faults of the emulated DNP3 outstation and IEC 61850 IED, each
injected through the fault engine and observed end to end on MQTT (real outstation/IED,
real gateway drivers, real Mosquitto): DEVICE_TROUBLE, confirm loss, report suppression,
association abort, control refused with an AddCause; plus the shipped
ied-stops-reporting scenario on the scenario runner (time-compressed)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml

from devices.lab import Lab, clean
from devices.scenario.resolve import load_scenario
from devices.scenario.runner import run_plan
from gateway.config import Config
from tests.scenario.helpers import ROOT, example_subset
from tests.support.mqtt import Collector

P, CB = "rtu1/T1_P", "rtu1/T1_HVCB"
IA, ICB = "ied-f3/Ia", "ied-f3/CB"


def source(lab: Lab, device: str):
    return next(s for s in lab.gateway.sources if s.device == device)


# ---------------------------------------------------------------- DNP3


@pytest.fixture
async def rtu(mosquitto):
    async with asyncio.timeout(60):
        async with Lab(example_subset("rtu1"), broker=mosquitto.url, seed=5) as lab:
            await lab.wait_for(P, quality="GOOD", timeout=15, since=0)
            await lab.wait_for(CB, quality="GOOD", timeout=5, since=0)
            yield lab


async def test_dnp3_faults(rtu: Lab) -> None:
    lab, src = rtu, source(rtu, "rtu1")
    os_ = lab.emu.devices["rtu1"].server

    # DEVICE_TROUBLE (IIN1.6): every value QUESTIONABLE|failure, also the ones that do not change
    t0 = time.time()
    a = await lab.inject("rtu1", {"kind": "iin", "bits": ["DEVICE_TROUBLE"]})
    for key in (P, CB):
        s = await lab.wait_for(key, quality="QUESTIONABLE", timeout=8, since=t0)
        assert s.quality.get("failure"), s.quality
    assert src.stats["device_trouble_seen"] == 1
    await lab.injector.clear(a.id)
    t1 = time.time()
    for key in (P, CB):
        await lab.wait_for(key, quality="GOOD", timeout=8, since=t1, match=clean)
    assert not src.iin & 0x0040

    # confirm loss: the outstation ignores every application confirm; three breaker events
    # during it must all reach MQTT with their device time, in order, exactly once: the
    # outstation re-sends them (DNP3 allows that), the master drops what it already published
    retried, base_confirmed = os_.counters["unsol_retried"], os_.events.stats[1].confirmed
    t2 = time.time()
    b = await lab.inject("rtu1", {"kind": "confirm_loss"})
    opened = await lab.inject(CB, {"kind": "set_state", "value": 1})
    await asyncio.sleep(1.5)
    await lab.injector.clear(opened.id)  # back to closed (2)
    await asyncio.sleep(1.5)
    reopened = await lab.inject(CB, {"kind": "set_state", "value": 1})
    await asyncio.sleep(3.0)
    assert os_.counters["confirms_ignored"] > 0
    assert os_.counters["unsol_retried"] > retried  # the unconfirmed unsolicited response is sent again
    assert os_.events.stats[1].confirmed == base_confirmed  # nothing confirmed, so nothing deleted
    assert os_.stats["events_buffered"] > 0
    await lab.injector.clear(b.id)
    deadline = time.monotonic() + 15
    while os_.stats["events_buffered"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert os_.stats["events_buffered"] == 0  # the backlog drains once confirms count again
    assert os_.events.stats[1].confirmed >= base_confirmed + 3
    assert all(st.overflowed == 0 for st in os_.events.stats.values())
    await asyncio.sleep(0.5)
    cb = [(s.value, s.timestamp) for s in lab.samples(CB, since=t2)]
    assert [v for v, _ in cb] == [1, 2, 1], cb  # no event lost, none published twice
    assert len({ts for _, ts in cb}) == 3
    assert src.stats["events_repeated"] > 0  # the outstation did re-send: the master dropped the repeats
    await lab.injector.clear(reopened.id)


# ---------------------------------------------------------------- IEC 61850


def with_commands(cfg: Config) -> Config:
    data = cfg.model_dump(mode="json")
    data["gateway"]["northbound"]["commands"] = True
    return Config.model_validate(data)


@pytest.fixture
async def ied(mosquitto):
    async with asyncio.timeout(90):
        async with Lab(with_commands(example_subset("ied-f3")), broker=mosquitto.url, seed=6) as lab:
            await lab.wait_for(IA, quality="GOOD", timeout=15, since=0)
            await lab.wait_for(ICB, quality="GOOD", timeout=5, since=0)
            yield lab


async def test_report_suppression_is_noticed_while_the_association_lives(ied: Lab) -> None:
    lab, src = ied, source(ied, "ied-f3")
    srv = lab.emu.devices["ied-f3"].server
    reconnects = src.state.reconnects
    t0 = time.time()
    a = await lab.inject("ied-f3", {"kind": "report_suppression"})
    s = await lab.wait_for(IA, quality="QUESTIONABLE", timeout=src.report_silence + 3 * src.cfg.timeout + 2, since=t0)
    assert s.quality.get("oldData"), s.quality
    cb = await lab.wait_for(ICB, quality="QUESTIONABLE", timeout=2, since=t0)  # a quiet discrete too
    latency = s.at - t0
    assert src.report_silence <= latency <= src.report_silence + 3 * src.cfg.timeout + 1
    assert src.state.reconnects == reconnects and src.connected and srv.connections >= 1  # association kept
    assert src.stats.gi_refused >= 1 and srv.counters["rcb_writes_refused"] >= 1
    assert srv.counters["silent_updates"] > 0  # the firmware kept writing the model, silently
    assert lab.samples(IA, since=s.at + 0.01) == [] or all(
        x.quality.get("validity") != "GOOD" for x in lab.samples(IA, since=s.at + 0.01))
    await lab.injector.clear(a.id)
    t1 = time.time()
    for key in (IA, ICB):
        await lab.wait_for(key, quality="GOOD", timeout=src.report_silence + 6, since=t1, match=clean)
    assert src.stats.report_silences == 1 and src.state.reconnects == reconnects
    print(f"report suppression detected after {latency:.2f} s (CB {cb.at - t0:.2f} s)")


async def test_quiet_ied_is_not_suspected(ied: Lab) -> None:
    """Values that simply do not change (no reports) are not report suppression: the GI is answered."""
    lab, src = ied, source(ied, "ied-f3")
    probes, refused = src.stats.gi_probes, src.stats.gi_refused
    t0 = time.time()
    a = await lab.inject("ied-f3", {"kind": "stuck"})
    await asyncio.sleep(1.0)  # the last changes before the freeze are reported
    reports = src.stats.reports
    await asyncio.sleep(src.report_silence + 2 * src.cfg.timeout)
    assert src.stats.gi_probes > probes and src.stats.gi_refused == refused  # quiet long enough to ask
    assert src.stats.reports > reports  # ... and the GI was answered
    assert src.stats.report_silences == 0
    for key in (IA, ICB):
        assert all(s.quality.get("validity") == "GOOD" for s in lab.samples(key, since=t0)), lab.samples(key, since=t0)
    await lab.injector.clear(a.id)


async def test_association_abort_and_add_cause(ied: Lab) -> None:
    lab, src = ied, source(ied, "ied-f3")
    srv = lab.emu.devices["ied-f3"].server
    reconnects = src.state.reconnects
    t0 = time.time()
    await lab.inject("ied-f3", {"kind": "association_abort"})
    lost = await lab.wait_for(IA, quality="INVALID", timeout=8, since=t0)
    assert lost.quality.get("failure") and srv.counters["aborted"] >= 1
    back = await lab.wait_for(IA, quality="GOOD", timeout=15, since=lost.at)
    assert src.state.reconnects == reconnects + 1 and srv.running  # the IED never stopped listening
    print(f"association abort: INVALID after {lost.at - t0:.2f} s, GOOD again after {back.at - t0:.2f} s")

    # control refused with AddCause 10: the driver returns it, the breaker stays closed
    await lab.wait_for(ICB, value=2, timeout=5, since=0)
    b = await lab.inject("ied-f3", {"kind": "control_refused", "add_cause": 10})
    r = await src.operate("CB", 1, mode="sbo")
    assert not r.ok and r.add_cause_code == 10 and r.add_cause == "Blocked-by-interlocking", r
    assert srv.counters["controls_refused"] == 1
    assert lab.emu.fw.value(lab.emu.fw.index("ied-f3", "CB")) == 2

    # ... and through the MQTT command path: the result topic carries the AddCause
    nb = lab.cfg.gateway.northbound
    mrid = next(m for m, k in lab.site.mrid_to_key.items() if k == ICB)
    cmd = f"{nb.topic_prefix}/{lab.cfg.gateway.id}/cmd/{mrid}"
    port = int(lab.broker.rsplit(":", 1)[1])
    async with Collector(port, [f"{cmd}/result"]) as room:
        req = {"id": "refused-1", "value": 1, "operator": "control-engineer", "issued": time.time()}
        room.client.publish(cmd, json.dumps(req), qos=1)
        res = await room.wait_for(lambda: room.latest("/result"), timeout=10, what="command result")
    assert res["id"] == "refused-1" and res["status"] == "failed" and res["reason"] == "device_refused", res
    assert res["detail"]["add_cause_code"] == 10 and res["detail"]["add_cause"] == "Blocked-by-interlocking", res
    assert srv.counters["controls_refused"] == 2
    await lab.injector.clear(b.id)
    t1 = time.time()
    r = await src.operate("CB", 1, mode="sbo")
    assert r.ok, r
    await lab.wait_for(ICB, value=1, timeout=5, since=t1)  # the same command now reaches the process


# ---------------------------------------------------------------- the shipped scenario


async def test_shipped_ied_stops_reporting_scenario(tmp_path: Path, mosquitto) -> None:
    """configs/scenarios/ied-stops-reporting.yaml on the runner, with only ied-f3 and 30 s → 14 s."""
    cfg = example_subset("ied-f3")
    cfg_path = tmp_path / "site.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    scn = yaml.safe_load((ROOT / "configs" / "scenarios" / "ied-stops-reporting.yaml").read_text())
    scn["config"] = str(cfg_path)
    step = scn["steps"][0]
    step["at"], step["duration"], step["expect"][0]["within"] = "1s", "14s", "14s"
    path = tmp_path / "ied-stops-reporting.yaml"
    path.write_text(yaml.safe_dump(scn))
    async with asyncio.timeout(50):
        res = await run_plan(load_scenario(path), broker=mosquitto.url, warmup=15)
    assert res.errors == []
    rep = res.report
    assert rep["passed"] is True, rep["expectations"]
    f = rep["faults"][0]
    assert f["undetected"] == [] or "ied-f3/Ia" not in f["undetected"]
    assert f["detection_latency"] is not None and f["detection_latency"] < 14
