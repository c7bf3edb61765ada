"""one-way: `gridgate demo --profile one-way` — the gateway in its own zone polls the field
devices and publishes to Mosquitto in the control zone; a subscriber there sees every
measurement GOOD; the gateway subscribes to nothing; nothing in control can reach the
gateway or the field, even with control's own firewall gone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from devices.netlab.run import Session, run_with_profile
from gateway.cim import build_catalog
from gateway.config import load_config
from tests.netlab_product.conftest import (
    SITE,
    deadline,
    descendants,
    needs_lab,
    probe,
    profile_args,
)

pytestmark = [needs_lab, pytest.mark.netns]


def test_demo_one_way_publishes_and_nothing_gets_in(capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict = {}

    def while_running(s: Session) -> None:
        lab = s.lab
        seen["holder"] = lab.holder_pid
        devices = [f"{h}:{p}" for h, p in s.endpoints.values()]
        gw = lab.address("gateway", towards="control")
        # the probes can see "open": the gateway zone does reach the devices
        seen["from_gateway"] = probe(lab, "gateway", devices[:3])
        seen["control"] = probe(lab, "control", [*devices, f"{gw}:1883", f"{gw}:22", f"{gw}:502"])
        # an attacker owning the control zone (its own firewall flushed) still gets nowhere
        assert lab.run_in("control", ["nft", "flush", "ruleset"]).returncode == 0
        seen["compromised"] = probe(lab, "control", [*devices[:3], f"{gw}:1883", f"{gw}:22"])
        seen["gw_dropped"] = lab.counters("gateway").get("input/dropped", 0)

    t0 = time.time()
    with deadline(90):
        rc = run_with_profile("demo", profile_args("demo", "one-way", 7, "--json"), on_ready=while_running)
    out = capsys.readouterr()
    assert rc == 0, out.err
    summary = json.loads(out.out)
    n_meas = len(build_catalog(load_config(SITE)))

    assert set(seen["from_gateway"].values()) == {"open"}
    assert set(seen["control"].values()) <= {"blocked", "timeout"}, seen["control"]  # never open, never even refused
    assert set(seen["compromised"].values()) == {"timeout"}, seen["compromised"]  # dropped at the gateway zone
    assert seen["gw_dropped"] >= 2

    # every measurement reached the control-zone subscriber, GOOD, with sane source timestamps
    assert summary["measurements_seen"] == n_meas
    assert summary["quality"] == {"GOOD": n_meas}
    assert summary["values_received"] >= n_meas
    for topic, row in summary["rows"].items():
        assert t0 - 5 < row["ts"] <= row["received"] + 1, (topic, row)
    gw = summary["gateway"]
    assert summary["gateway_exit"] == 0 and gw["dropped"] == 0 and gw["reconnects"] == 0
    assert gw["sent"] >= summary["values_received"] and gw["unknown"] == 0
    assert summary["status"] == {"kgm-gw1": "offline"}  # the clean shutdown's final status crossed too

    assert "(profile one-way, inbound=False)" in summary["gateway_started"]
    # the gateway subscribed to nothing (Mosquitto logs every SUBSCRIBE; the watcher's prove it logs them)
    subs = summary["broker_subscriptions"]
    assert any(c.startswith("gridgate-watch-") for c in subs), subs
    assert not any(c.startswith("gridgate-kgm") for c in subs), subs

    # cleanup: the lab's holder (and with it every namespace) is gone, no child left behind
    assert not Path(f"/proc/{seen['holder']}").exists()
    assert descendants() == []
