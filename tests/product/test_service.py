"""Running as a service: systemd readiness and watchdog over a real notify socket, the unit files as
systemd itself parses them, journald/JSON log formats, and the Prometheus endpoint parsed by the
Prometheus client's own parser."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
MODBUS_SAMPLE = ROOT / "gateway/protocols/modbus/sample-site.yaml"
GRIDGATE = [sys.executable, "-m", "gateway.cli"]


def _site_on_free_port(tmp_path: Path) -> Path:
    import yaml

    data = yaml.safe_load(MODBUS_SAMPLE.read_text())
    data["devices"][0]["port"] = free_port()
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.2)
    yield s, path
    s.close()


def test_emulate_and_gateway_notify_ready_and_keep_the_watchdog_fed(tmp_path, notify_socket, mosquitto) -> None:
    import threading

    sock, path = notify_socket
    msgs: list[str] = []
    done = threading.Event()

    def reader() -> None:  # systemd reads promptly; so does this
        while not done.is_set():
            try:
                msgs.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    site = _site_on_free_port(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}  # ping every 0.2 s
    log = open(tmp_path / "emulate.log", "w")  # noqa: SIM115 - closed with the process
    emu = subprocess.Popen([*GRIDGATE, "emulate", "--config", str(site), "--no-fault-api"], env=env,
                           stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and sum(m == "WATCHDOG=1" for m in msgs) < 3:
            time.sleep(0.1)
        assert any(m.startswith("READY=1") and "STATUS=emulating 1 devices" in m for m in msgs), msgs
        assert sum(m == "WATCHDOG=1" for m in msgs) >= 3, msgs
        gw = subprocess.Popen([*GRIDGATE, "gateway", "--config", str(site), "--broker", mosquitto.url, "--duration", "3"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = gw.communicate(timeout=60)
        assert gw.returncode == 0, err
        time.sleep(0.5)
        assert any(m.startswith("READY=1\nSTATUS=1 devices, 3 measurements") for m in msgs), msgs
        assert "STOPPING=1" in msgs
    finally:
        emu.terminate()
        emu.wait(timeout=60)
        log.close()
        done.set()
    assert emu.returncode == 0, (tmp_path / "emulate.log").read_text()[-2000:]


def test_a_hung_event_loop_stops_the_watchdog(notify_socket) -> None:
    """The ping runs on the loop: block the loop and the pings stop (systemd would restart us)."""
    sock, path = notify_socket
    code = ("import asyncio, time\nfrom gateway import service\n"
            "async def main():\n    await service.ready('test')\n    await asyncio.sleep(0.6)\n    time.sleep(2.0)\n"
            "asyncio.run(main())\n")
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
    p = subprocess.Popen([sys.executable, "-c", code], env=env)
    stamps = []
    end = time.monotonic() + 4
    while time.monotonic() < end and p.poll() is None:
        try:
            if sock.recv(4096).decode() == "WATCHDOG=1":
                stamps.append(time.monotonic())
        except TimeoutError:
            pass
    p.wait(timeout=10)
    assert len(stamps) >= 3
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) < 0.5 or stamps[-1] - stamps[0] < 1.5, gaps  # pings only while the loop ran
    assert all(t < stamps[0] + 1.2 for t in stamps), "a ping was sent while the loop was blocked"


@pytest.mark.parametrize("unit", ["gateway", "emulate"])
def test_unit_files_verify_and_are_hardened(unit: str, tmp_path: Path) -> None:
    r = subprocess.run([*GRIDGATE, "service", "print", unit, "--config", "/etc/gridgate/site.yaml"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for line in ("Type=notify", "WatchdogSec=", "User=gridgate", "StateDirectory=gridgate", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "CapabilityBoundingSet=", "Restart=on-failure"):
        assert line in text, line
    path = tmp_path / f"gridgate-{unit}.service"
    path.write_text(text)
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    v = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    problems = [line for line in v.stderr.splitlines() if str(path) in line]
    assert not problems, v.stderr
    out = subprocess.run([*GRIDGATE, "service", "install", unit, "--unit-dir", str(tmp_path / "units")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "cannot write" in out.stderr  # no such directory: a clear refusal
    (tmp_path / "units").mkdir()
    out = subprocess.run([*GRIDGATE, "service", "install", unit, "--unit-dir", str(tmp_path / "units")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and (tmp_path / "units" / f"gridgate-{unit}.service").read_text() == text


def test_metrics_endpoint_serves_the_status_figures(tmp_path, mosquitto) -> None:
    site = _site_on_free_port(tmp_path)
    port = free_port()
    emu = subprocess.Popen([*GRIDGATE, "emulate", "--config", str(site), "--no-fault-api"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    gw = subprocess.Popen([*GRIDGATE, "gateway", "--config", str(site), "--broker", mosquitto.url, "--metrics", str(port),
                           "--duration", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fams = {}
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                time.sleep(0.3)
                continue
            fams = {f.name: f for f in text_string_to_metric_families(body)}
            conn, pub = fams.get("gridgate_device_connected"), fams.get("gridgate_published")
            # the status and catalog count as published before the device answers: wait for both
            if conn and conn.samples and conn.samples[0].value >= 1 and pub and pub.samples[0].value >= 3:
                break
            time.sleep(0.3)
        connected = fams["gridgate_device_connected"].samples
        assert [(s.labels["device"], s.labels["protocol"], s.value) for s in connected] == [("meter1", "modbus", 1.0)]
        assert fams["gridgate_device_polls"].samples[0].value >= 1
        assert fams["gridgate_published"].samples[0].value >= 3
        assert any(s.labels.get("counter") == "requests" for s in fams["gridgate_device_protocol"].samples)
        assert fams["gridgate_event_loop_lag_seconds"].type == "histogram"
    finally:
        gw.terminate()
        emu.terminate()
        gw.wait(timeout=30)
        emu.wait(timeout=30)


@pytest.mark.parametrize("fmt", ["json", "journal"])
def test_log_formats(fmt: str, tmp_path: Path) -> None:
    r = subprocess.run([*GRIDGATE, "gateway", "-v", "--log-format", fmt, "--config", str(_site_on_free_port(tmp_path)),
                        "--broker", "mqtt://127.0.0.1:1", "--duration", "1"], capture_output=True, text=True, timeout=60)
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("error:")]
    assert lines
    if fmt == "json":
        recs = [json.loads(line) for line in lines]
        assert all({"ts", "level", "logger", "msg"} <= set(rec) for rec in recs)
    else:
        assert all(line.startswith(("<3>", "<4>", "<6>", "<7>")) for line in lines), lines[:5]
