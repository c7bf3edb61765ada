"""configs/scenarios/rtu104-link-faults.yaml on the scenario runner (refused STARTDT, then a clock jump),
on free ports and with its steps shortened; the report's expectations must all pass."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from devices.scenario.ports import with_free_ports
from devices.scenario.resolve import load_scenario
from devices.scenario.runner import run_plan
from gateway.config import load_config

ROOT = Path(__file__).resolve().parents[2]


async def test_shipped_rtu104_link_faults_scenario(tmp_path: Path, mosquitto) -> None:
    cfg = with_free_ports(load_config(ROOT / "configs" / "iec104-rtu.yaml"))
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    scn = yaml.safe_load((ROOT / "configs" / "scenarios" / "rtu104-link-faults.yaml").read_text())
    scn["config"] = str(site)
    startdt, jump = scn["steps"]
    startdt["at"], startdt["duration"] = "1s", "8s"
    jump["after"], jump["duration"] = "previous+12s", "4s"
    startdt["expect"][1]["within"] = jump["expect"][0]["within"] = jump["expect"][1]["within"] = "8s"
    path = tmp_path / "rtu104-link-faults.yaml"
    path.write_text(yaml.safe_dump(scn))
    async with asyncio.timeout(90):
        res = await run_plan(load_scenario(path), broker=mosquitto.url, warmup=15)
    assert res.errors == []
    rep = res.report
    assert rep["passed"] is True, rep["expectations"]
    assert len(rep["expectations"]) == 4 and [f["kind"] for f in rep["faults"]] == ["startdt_refused", "time_jump"]
