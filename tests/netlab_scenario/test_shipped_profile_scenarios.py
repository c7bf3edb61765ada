"""The shipped network-profile scenarios (configs/scenarios/wan-flap.yaml, wan-partition.yaml) run to
PASS in their own profile (wan-cellular), on the example site cut down to the devices they expect on.
Skipped with the reason where namespaces/TUN are unavailable; each run is bounded by an alarm."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devices.netlab.profile import load_profile
from devices.scenario.profiled import run_in_profile
from tests.netlab_product.conftest import deadline
from tests.support.lab import needs_lab

REPO = Path(__file__).resolve().parents[2]


@needs_lab
@pytest.mark.parametrize("name", ["wan-partition", "wan-flap"])
def test_shipped_profile_scenario_passes(tmp_path: Path, name: str) -> None:
    scn = yaml.safe_load((REPO / "configs" / "scenarios" / f"{name}.yaml").read_text())
    keep = {ex["point"].split("/", 1)[0] for ex in scn["expect"]}
    site = yaml.safe_load((REPO / "configs" / "primary-substation.yaml").read_text())
    site["devices"] = [d for d in site["devices"] if d["name"] in keep]
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    scn["config"] = "site.yaml"
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(scn, sort_keys=False))
    with deadline(110):
        res = run_in_profile(str(f), None, load_profile(scn["profile"]), warmup=15, keep=tmp_path / "work")
    assert res.passed, (res.errors, [v.__dict__ for v in res.verdicts])
    assert res.report["profile"] == "wan-cellular" and len(res.verdicts) == len(scn["expect"])
    assert all(v.latency is not None and v.latency > 0 for v in res.verdicts)  # fresh values after the fault
    link_faults = [f for f in res.report["faults"] if f["target"] == "link north"]
    assert link_faults and all(f["network"]["gap_s"] is not None for f in link_faults if f["kind"] != "latency")
