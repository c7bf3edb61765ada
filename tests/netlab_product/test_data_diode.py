"""data-diode: `gridgate demo --profile data-diode` — the gateway's northbound is the UDP
diode sender; the receiver in the control zone republishes to Mosquitto. A real outage on
the link (control's input drops the diode datagrams for a second) shows up as gaps on
``gridgate/diode/status``, and every record the gateway sent is accounted for as either
delivered or lost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from devices.netlab.run import DIODE_STATUS, Session, run_with_profile
from gateway.cim import build_catalog
from gateway.config import load_config
from tests.netlab.conftest import collect, subscriber
from tests.netlab_product.conftest import (
    SITE,
    deadline,
    descendants,
    needs_lab,
    profile_args,
)

pytestmark = [needs_lab, pytest.mark.netns]
RULE = "udp dport 47000 counter drop comment \"outage\""


def test_diode_values_arrive_and_loss_is_reported_as_gaps(capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict = {}

    def outage(s: Session) -> None:
        lab = s.lab
        seen["holder"] = lab.holder_pid
        ctl = lab.address("control", towards="gateway")
        time.sleep(1.5)  # values flowing
        assert lab.run_in("control", ["nft", "insert", "rule", "inet", "gridgate", "input", *RULE.split()]).returncode == 0
        time.sleep(1.0)
        seen["dropped"] = lab.counters("control").get("input/outage", 0)
        handles = lab.run_in("control", ["nft", "-a", "list", "chain", "inet", "gridgate", "input"]).stdout
        handle = next(l for l in handles.splitlines() if "outage" in l).rsplit("handle", 1)[1].split()[0]
        assert lab.run_in("control", ["nft", "delete", "rule", "inet", "gridgate", "input", "handle", handle]).returncode == 0
        time.sleep(2.0)  # gap grace (0.5 s) and the next status publication (1 s)
        st = subscriber(lab, "control", ctl, DIODE_STATUS, count=1, timeout=5)  # retained
        seen["status"] = collect(st, 10)[0]["payload"]

    with deadline(90):
        rc = run_with_profile("demo", profile_args("demo", "data-diode", 8, "--json"), on_ready=outage)
    out = capsys.readouterr()
    assert rc == 0, out.err
    summary = json.loads(out.out)
    n_meas = len(build_catalog(load_config(SITE)))

    # the outage really dropped datagrams, and the status topic reported it as gaps
    assert seen["dropped"] > 0
    assert seen["status"]["lost"] > 0 and seen["status"]["gaps"], seen["status"]
    rx, gw = summary["diode"], summary["gateway"]
    print(f"diode: sent {gw['sent']}, delivered {rx['records']}, lost {rx['lost']} in {len(rx['gaps'])} gaps, "
          f"recovered {rx['recovered']}, datagrams dropped by the outage {seen['dropped']}")
    assert rx["lost"] >= seen["status"]["lost"] and rx["gaps"]
    assert all(a <= b for a, b in rx["gaps"])
    # nothing silently lost: every record the gateway sent was delivered or reported lost
    assert gw["sent"] == rx["last_seq"] == rx["records"] + rx["lost"], (gw, rx)
    assert gw["dropped"] == 0 and rx["bad"] == 0 and rx["sender_restarts"] == 0
    # values crossed the diode: every measurement seen, GOOD
    assert summary["measurements_seen"] == n_meas and summary["quality"] == {"GOOD": n_meas}
    assert summary["broker_subscriptions"] and not any(c.startswith("gridgate-kgm") for c in summary["broker_subscriptions"])
    assert not Path(f"/proc/{seen['holder']}").exists()
    assert descendants() == []
