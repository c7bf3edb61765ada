"""The shipped example site with every optional northbound feature on — commands, spool, QoS 1
analog, Sparkplug ``both``, compact payloads, mutual TLS — as real processes (`gridgate emulate`,
`gridgate gateway`) against a real Mosquitto for about 30 s: values flow, commands are answered,
the gateway stays healthy (issue 14: commands on crashed it with gmqtt's packet-id OverflowError)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config
from gateway.northbound.commands import command_points
from tests.northbound.certs import make_pki
from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "configs" / "primary-substation.yaml"
RUN_S = 30


def all_features_site(tmp: Path, port: int, pki) -> Path:
    """The example site, devices on free loopback ports, every optional northbound feature switched on."""
    raw = yaml.safe_load(SITE.read_text())
    for d in raw["devices"]:
        d["port"] = free_port()
    nb = raw["gateway"]["northbound"]
    nb.update({
        "url": f"mqtts://127.0.0.1:{port}",
        "tls": {"ca_file": str(pki.ca_crt), "cert_file": str(pki.client_crt), "key_file": str(pki.client_key)},
        "require_tls": True,
        "commands": True,
        "spool": {"path": str(tmp / "spool.db")},
        "analog_qos": 1,
        "encoding": "both",
        "sparkplug": {"group": "kgm"},
        "payload": "compact",
        "integrity_interval": "10s",
    })
    out = tmp / "site-all-features.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def _ctx(pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_crt))
    ctx.load_cert_chain(str(pki.hist_crt), str(pki.hist_key))
    return ctx


async def test_example_site_with_every_northbound_feature_runs_healthy(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl (apt-get install -y openssl)")
    root = Path(tempfile.mkdtemp(prefix="gg-allfeat-"))
    root.chmod(0o755)  # mosquitto run as root drops to its own user before reading the certificates
    pki = make_pki(root / "pki")
    (root / "pki").chmod(0o755)
    broker = Mosquitto(extra=f"cafile {pki.ca_crt}\ncertfile {pki.server_crt}\nkeyfile {pki.server_key}\n"
                             "require_certificate true\n").start()
    site = all_features_site(tmp_path, broker.port, pki)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    emu = subprocess.Popen([sys.executable, "-m", "gateway.cli", "emulate", "--config", str(site), "--no-fault-api"],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "emu.log", "wb"))
    gw = None
    try:
        prefix = "gridgate/v1/kgm-gw1"
        async with RawSubscriber(broker.port, [f"{prefix}/#", "spBv1.0/kgm/#"], client_id="room",
                                 ssl_ctx=_ctx(pki)) as room:
            gw = subprocess.Popen([sys.executable, "-m", "gateway.cli", "gateway", "--config", str(site),
                                   "--duration", str(RUN_S)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(tmp_path / "gw.log", "wb"))
            t0 = time.monotonic()
            assert await room.wait_for(lambda m: any("/meas/" in x.topic for x in m), 30), (tmp_path / "gw.log").read_text()

            def rtu_up(m) -> bool:  # noqa: ANN001 - the RTU may still be starting when the meters already report
                st = [json.loads(x.payload) for x in m if x.topic == f"{prefix}/status"]
                return bool(st) and ((st[-1].get("devices") or {}).get("rtu1") or {}).get("connected") is True

            assert await room.wait_for(rtu_up, 30), (tmp_path / "gw.log").read_text()[-2000:]
            # a command on the breaker the site allows, answered exactly once
            cb = next(p for p in command_points(load_config(str(site))) if p.device == "rtu1")
            mrid = cb.mrid
            body = {"id": "all-1", "value": 1, "operator": "control-engineer", "issued": time.time()}
            room.publish(f"{prefix}/cmd/{mrid}", json.dumps(body).encode())
            assert await room.wait_for(lambda m: any(x.topic.endswith("/result") for x in m), 20)
            results = [json.loads(x.payload) for x in room.messages if x.topic.endswith("/result")]
            while time.monotonic() - t0 < RUN_S - 5:
                assert gw.poll() is None, (tmp_path / "gw.log").read_text()[-3000:]
                await asyncio.sleep(1)
            assert await asyncio.get_running_loop().run_in_executor(None, gw.wait, 30) == 0  # clean stop at --duration
            assert await room.wait_for(lambda m: m[-1].topic == f"{prefix}/status", 10)
            meas = [x for x in room.messages if "/meas/" in x.topic]
            spb = [x for x in room.messages if x.topic.startswith("spBv1.0/kgm/DDATA/")]
            status = [json.loads(x.payload) for x in room.messages if x.topic == f"{prefix}/status"]
        log = (tmp_path / "gw.log").read_text()
        assert "Traceback" not in log and "OverflowError" not in log, log[-3000:]
        assert len(results) == 1 and results[0]["id"] == "all-1", results
        assert results[0]["status"] == "done", json.dumps(results)
        assert len(meas) > 200 and all(x.qos == 1 for x in meas)
        assert all("description" not in json.loads(x.payload) for x in meas[:50])  # compact payloads
        assert len(spb) > 20
        online = [s for s in status if s["state"] == "online"]
        assert online and online[-1]["stats"]["dropped"] == 0 and online[-1]["stats"]["spool"]["state"] == "ok"
        assert status[-1]["state"] == "offline" and status[-1]["reason"] == "shutdown"
        print(f"\nall features, {RUN_S} s: {len(meas)} CIM values (QoS 1, compact), {len(spb)} Sparkplug DDATA, "
              f"command {results[0]['status']} in one result, gateway stats {online[-1]['stats']}")
    finally:
        for p in (gw, emu):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
