"""The one-step feeder-fault scenario end to end: a short circuit on F1 is the only scripted event;
protection start and operate, the breaker opening and the dead feeder come out of the plant model.

Runs the real `gridgate scenario run` (devices, gateway, broker, recorder) on the example site cut
down to F1's IED and the incomer meters, so a loaded 2-core machine keeps up with the 20 ms tick.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KEEP = ("ied-f1", "pqm-inc1", "pqm-inc2")


def run_scenario(tmp_path: Path, scenario: str, keep: tuple[str, ...]) -> dict:
    """`gridgate scenario run` on the example site cut down to ``keep``; the JSON report."""
    site = yaml.safe_load((ROOT / "configs" / "primary-substation.yaml").read_text())
    site["devices"] = [d for d in site["devices"] if d["name"] in keep]
    cfg = tmp_path / "site.yaml"
    cfg.write_text(yaml.safe_dump(site, sort_keys=False))
    report = tmp_path / "report.json"
    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "scenario", "run", "--free-ports", "--config", str(cfg), "--report",
         str(report), str(ROOT / "configs" / "scenarios" / scenario)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(report.read_text())


def test_feeder_fault_scenario_soe_comes_from_the_plant(tmp_path):
    rep = run_scenario(tmp_path, "feeder-fault-trip.yaml", KEEP)
    assert rep["passed"] and rep["errors"] == []
    assert [f["kind"] for f in rep["faults"]] == ["short_circuit"]  # the only scripted event
    soe = next(e for e in rep["expectations"] if e["where"] == "expect[0]")
    assert soe["passed"], soe
    seqs = [int(x) for x in soe["detail"].removeprefix("seq ").split(", ")]
    assert seqs == sorted(seqs) and len(seqs) == 4
    ia = [(t, v) for t, v, *_ in rep["points"]["ied-f1/Ia"]["samples"]]
    fault = [v for t, v in ia if 5.0 <= t and v > 1000]
    assert fault and 1400 < max(fault) < 2200  # about 1.8 kA in phase A: two 6.35 ohm neutral resistors in parallel
    assert ia[-1][1] == 0  # the feeder stays dead after the trip


def test_tap_runaway_is_stopped_after_one_step_by_the_avc(tmp_path):
    rep = run_scenario(tmp_path, "tap-runaway-lockout.yaml", ("rtu1",))
    assert rep["passed"] and [f["kind"] for f in rep["faults"]] == ["tap_runaway"]
    taps = [v for _, v, *_ in rep["points"]["rtu1/T1_TAP"]["samples"]]
    assert taps[0] == 9 and taps[-1] == 10 and max(taps) == 10  # one uncommanded step, then locked out


def _curve_si(i: float, pickup: float = 400.0, tms: float = 0.1) -> float:
    return tms * 0.14 / ((i / pickup) ** 0.02 - 1.0)


def test_ct_saturation_delays_the_trip(tmp_path):
    """configs/scenarios/ct-saturation-delayed-trip.yaml: the relay operates on the curve of the current
    its saturated CTs deliver, later than the true fault current (read by the IED's MMXU) would make it."""
    rep = run_scenario(tmp_path, "ct-saturation-delayed-trip.yaml", KEEP)
    assert rep["passed"] and rep["errors"] == [], rep["expectations"]
    assert [f["kind"] for f in rep["faults"]] == ["ct_saturation", "short_circuit"]
    ia = [(t, v) for t, v, *_ in rep["points"]["ied-f1/Ia"]["samples"]]
    fault_i = max(v for t, v in ia if t >= 5.0)
    assert 1500 < fault_i < 2500  # the line's true current
    seen = 500 + (fault_i - 500) * 0.15  # what the saturated CTs give the relay
    op_at = next(e for e in rep["expectations"] if e["where"] == "expect[0]")["latency"]  # operate's arrival
    # published on MQTT: the firmware's operate time plus a non-negative delivery delay
    assert op_at > _curve_si(fault_i) + 0.4, (op_at, _curve_si(fault_i))
    assert _curve_si(seen) - 0.1 < op_at < _curve_si(seen) + 1.5, (op_at, _curve_si(seen))
    assert ia[-1][1] == 0
