"""Every Sparkplug message type of a real `gridgate demo` run (`encoding: both`, the shipped site) decoded by
an independent implementation: Eclipse Tahu's JavaScript payload library (vendored, tests/northbound/js),
run by node's test runner. The host side here is a raw-socket MQTT client on a real Mosquitto."""

from __future__ import annotations

import base64
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

from gateway.runtime import default_config
from tests.northbound import pbdecode
from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
JS = Path(__file__).parent / "js"
HOST = "scada"
STATE = f"spBv1.0/STATE/{HOST}"


def _site(tmp_path: Path) -> Path:
    data = yaml.safe_load(Path(default_config()).read_text())
    for d in data["devices"]:
        d["port"] = free_port()  # the shipped ports may be taken by a parallel run
    data["gateway"]["northbound"].update(encoding="both", commands=True, sparkplug={
        "group": "KGM", "primary_host": HOST, "state": str(tmp_path / "spb.json")})
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _ms(iso: str) -> int:
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(t.timestamp()) * 1000 + t.microsecond // 1000


def _spb(host: RawSubscriber, kind: str) -> list[dict]:
    return [pbdecode.payload(m.payload) for m in host.messages if m.topic.startswith("spBv1.0/KGM/")
            and m.topic.split("/")[2] == kind]


async def test_demo_run_decodes_with_tahu_javascript(mosquitto, tmp_path):
    node = shutil.which("node")
    assert node, "node is not installed: apt-get install -y nodejs (./run setup test does this)"
    site = _site(tmp_path)
    async with RawSubscriber(mosquitto.port, ["spBv1.0/#", "gridgate/v1/kgm-gw1/meas/#"], client_id=HOST) as host:
        host.publish(STATE, json.dumps({"online": False, "timestamp": int(time.time() * 1000)}).encode(), retain=True)
        log = open(tmp_path / "demo.log", "wb")  # a file, not a pipe: a chatty run must never block on it
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--config", str(site), "--broker",
                                 mosquitto.url, "--duration", "90", "--no-live", "--json"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
        try:
            assert await host.wait_for(lambda ms: sum("/meas/" in m.topic for m in ms) > 50, 20), "no CIM values"
            assert _spb(host, "NBIRTH") == []  # host offline: no births
            await host.wait_for(lambda ms: False, 1.5)  # readings meanwhile are held (sent later as historical)
            host.publish(STATE, json.dumps({"online": True, "timestamp": int(time.time() * 1000)}).encode(), retain=True)
            assert await host.wait_for(lambda ms: len(_spb(host, "DBIRTH")) == 9, 15), "DBIRTH of all 9 devices"
            assert await host.wait_for(lambda ms: any(not m.get("is_historical") for d in _spb(host, "DDATA")
                                                      for m in d["metrics"]), 10)
            host.publish("spBv1.0/KGM/NCMD/kgm-gw1", pbdecode.ncmd_rebirth())
            assert await host.wait_for(lambda ms: len(_spb(host, "NBIRTH")) == 2, 10), "rebirth"
            births = {m.topic.rsplit("/", 1)[1]: pbdecode.payload(m.payload) for m in host.messages if "/DBIRTH/" in m.topic}
            result_alias = next(x["alias"] for x in births["rtu1"]["metrics"]
                                if x["name"] == "T1/HVCB/SwitchPosition/CommandResult")
            host.publish("spBv1.0/KGM/DCMD/kgm-gw1/rtu1", pbdecode.command(int(time.time() * 1000), [
                {"name": "T1/HVCB/SwitchPosition", "datatype": 3, "value": 1,
                 "properties": {"Operator": "control-engineer"}}]))
            assert await host.wait_for(lambda ms: any(x["alias"] == result_alias for d in _spb(host, "DDATA")
                                                      for x in d["metrics"]), 15), "DCMD result"
            result = json.loads(next(x["value"] for d in _spb(host, "DDATA") for x in d["metrics"]
                                     if x["alias"] == result_alias))
            assert (result["status"], result["operator"], result["mode"]) == ("done", "control-engineer", "sbo"), result
            # every step done: stop the demo as Ctrl-C would (a fixed --duration was too short on a loaded machine)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=40)
            assert proc.returncode == 0, (tmp_path / "demo.log").read_text()[-2000:]
            summary = json.loads(out)  # still given when interrupted
            assert summary["interrupted"] is True and summary["values_received"] > 50, summary
            assert summary["gateway"]["sparkplug"]["births"] == 2  # the demo's own summary counts them
            assert await host.wait_for(lambda ms: _spb(host, "NDEATH"), 5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            log.close()

    messages = [{"topic": m.topic, "payload": base64.b64encode(m.payload).decode(), "expect": pbdecode.payload(m.payload)}
                for m in host.messages if m.topic.startswith("spBv1.0/KGM/")]
    cim = [{"mRID": v["measurement"]["mRID"], "timestamp": _ms(v["timeStamp"]), "value": v["value"]}
           for v in (json.loads(m.payload) for m in host.messages if "/meas/" in m.topic)]
    fixture = tmp_path / "spb-run.json"
    fixture.write_text(json.dumps({"messages": messages, "cim": cim}))
    r = subprocess.run([node, "--test", str(JS / "tahu.test.mjs")], capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "GRIDGATE_SPB_RUN": str(fixture)})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert re.search(r"^# fail 0$", out, re.M) and int(re.search(r"^# pass (\d+)", out, re.M).group(1)) >= 6, out[-2000:]
