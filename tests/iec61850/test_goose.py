"""GOOSE (optional part of issue 13): XCBR.Pos and PTOC.Op published by an emulated IED inside a
network namespace the test creates, received by the gateway's GOOSE subscriber as events."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from gateway.protocols.iec61850.config import Iec61850Device
from tests.iec61850.support import HERE, ROOT, bay_points

pytestmark = pytest.mark.netns


def _can_unshare() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs network namespaces (root or unshare)")
def test_goose_breaker_and_trip_events_in_a_lab_namespace():
    pts = bay_points("F1PROT")
    pts.append({"name": "Op", "reference": "F1PROT/PTOC1.Op.general", "fc": "ST",
                "measurement": {"equipment": "S1/F1/CB1", "type": "ProtectionOperate"}})
    dev = Iec61850Device.model_validate({
        "name": "F1", "kind": "ied", "protocol": "iec61850", "host": "127.0.0.1", "port": 10102,
        "iec61850": {"goose_interface": "lo"}, "points": pts,
    })
    r = subprocess.run(["unshare", "-n", sys.executable, os.path.join(HERE, "goose_ns.py"), dev.model_dump_json()],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["members"] == ["F1PROT/XCBR1.Pos[ST]", "F1PROT/PTOC1.Op[ST]"]
    got = out["got"]
    close = [g for g in got if g["event"] and g["key"] == "F1/Pos" and g["value"] == 2]
    trip = [g for g in got if g["event"] and g["key"] == "F1/Op" and g["value"] == 1]
    assert len(close) == 1 and close[0]["q"] == 0 and abs(close[0]["t"] - out["stamps"]["close"]) < 2e-3
    assert len(trip) == 1 and trip[0]["q"] == 0 and abs(trip[0]["t"] - out["stamps"]["trip"]) < 2e-3
    st = out["stats"]
    assert st["changes"] == 3 and st["invalid"] == 0  # initial state, close, trip
    assert st["retransmissions"] >= 2  # the same state repeated (4, 8, 16, ... ms), never a repeated event


def test_goose_on_a_host_interface_is_refused():
    from devices.iec61850.goose import lab_interface
    from devices.iec61850.server import Iec61850Ied
    from tests.iec61850.support import ied_device

    assert lab_interface("lo")
    if os.environ.get("GRIDGATE_LAB_ZONE"):
        pytest.skip("already inside a lab namespace")
    assert not lab_interface("eth0")
    dev = ied_device(iec61850={"goose_interface": "eth0"})
    ied = Iec61850Ied(dev)
    with pytest.raises(OSError, match="only on 'lo' or inside a lab network namespace"):
        ied.start()
    assert not ied.running


@pytest.mark.skipif(not _can_unshare(), reason="needs network namespaces (root or unshare)")
def test_gateway_driver_takes_goose_events_once():
    """Report and GOOSE bring the same close: the driver passes one event on."""
    dev = Iec61850Device.model_validate({
        "name": "F1", "kind": "ied", "protocol": "iec61850", "host": "127.0.0.1", "port": 10102, "timeout": 1.0,
        "iec61850": {"goose_interface": "lo", "goose_subscribe": "lo"}, "points": bay_points("F1PROT"),
    })
    r = subprocess.run(["unshare", "-n", sys.executable, os.path.join(HERE, "goose_source_ns.py"), dev.model_dump_json()],
                       capture_output=True, text=True, timeout=90, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    closes = [e for e in out["events"] if e["value"] == 2]
    assert len(closes) == 1 and abs(closes[0]["t"] - out["ts"]) < 2e-3
    assert out["goose"]["changes"] >= 2 and out["goose"]["retransmissions"] >= 2
