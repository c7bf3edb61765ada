"""The mimic's server and command line: static files, /site.json from the site file, clear usage errors,
and `gridgate demo --hmi` with the embedded broker's own WebSocket listener driving the page."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

import pytest
import yaml

from gateway.cli import main
from gateway.config import load_config
from gateway.hmi.server import HmiServer, check_ws_url
from gateway.hmi.site import site_description
from tests.hmi.support import EXAMPLE, chromium, console_errors, example_site, quit_chromium, wait_until
from tests.support.mosquitto import free_port


def _get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def test_serves_page_site_description_and_vendored_libraries():
    cfg = load_config(EXAMPLE)
    server = await HmiServer(site_description(cfg, "ws://127.0.0.1:9001"), "127.0.0.1", 0).start()
    try:
        get = lambda path: asyncio.to_thread(_get, server.url.rstrip("/") + path)  # noqa: E731
        status, headers, body = await get("/")
        assert status == 200 and b'src="/static/js/app.js"' in body
        assert "connect-src 'self' ws://127.0.0.1:9001" in headers["Content-Security-Policy"]
        status, _, body = await get("/site.json")
        site = json.loads(body)
        assert site["gateway"] == "kgm-gw1" and site["prefix"] == "gridgate/v1" and site["wsUrl"] == "ws://127.0.0.1:9001"
        assert site["commandsEnabled"] is False  # the shipped example keeps the command path off
        f1 = next(d for d in cfg.devices if d.name == "ied-f1")
        cb = str(cfg.measurement_mrid(next(p for p in f1.points if p.name == "CB")))
        assert site["commands"][cb] == {"mode": "sbo", "operators": ["control-engineer"], "device": "ied-f1", "point": "CB"}
        assert len(site["commands"]) == 9
        bays = {b["name"]: b for b in site["substations"][0]["bays"]}
        assert bays["T1"]["voltage_kv"] == 33 and bays["F1"]["description"].startswith("11 kV feeder F1")
        for path, ctype in (("/static/vendor/mqtt/mqtt.min.js", "javascript"), ("/static/vendor/uplot/uPlot.iife.min.js", "javascript"),
                            ("/static/js/model.js", "javascript"), ("/static/hmi.css", "text/css")):
            status, headers, body = await get(path)
            assert status == 200 and ctype in headers["Content-Type"] and len(body) > 1000, path
        assert (await get("/static/../../pyproject.toml"))[0] in (403, 404)
        assert (await get("/nothing"))[0] == 404
    finally:
        await server.stop()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9001", "127.0.0.1:9001", "ws://", "ws://h:port"])
def test_bad_ws_url_is_a_usage_error_naming_the_option(url, capsys):
    with pytest.raises(ValueError, match="--ws-url"):
        check_ws_url(url)
    assert main(["hmi", "--ws-url", url, "--duration", "0"]) == 2
    assert "--ws-url" in capsys.readouterr().err


def test_demo_hmi_refuses_a_network_profile(capsys):
    assert main(["demo", "--hmi", "8080", "--profile", "one-way", "--duration", "0"]) == 2
    assert "flat (loopback) profile only" in capsys.readouterr().err


def test_bad_config_is_reported_with_its_place(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {name: X}\nsubstations: []\n")
    assert main(["hmi", "--config", str(bad), "--ws-url", "ws://127.0.0.1:1", "--duration", "0"]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "substations" in err


def test_demo_hmi_with_the_embedded_broker_websocket_listener(tmp_path):
    """`gridgate demo --hmi PORT`: amqtt opens a WebSocket listener itself; the page shows the site live."""
    cfg = example_site(commands=False)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--config", str(path), "--hmi", str(port),
                             "--broker-port", str(free_port()), "--no-live", "--duration", "90"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/"
        site = wait_until(lambda: json.loads(_get(url + "site.json")[2]), 60, "demo's mimic serving")
        assert site["wsUrl"].startswith("ws://127.0.0.1:")
        driver = chromium(tmp_path)
        driver.get(url)
        states = wait_until(lambda: (s := driver.execute_script(
            "return [...document.querySelectorAll('g.breaker')].map(g => g.dataset.state)")) and len(s) == 11
            and "unknown" not in s and s, 90, "all 11 breakers with a position over amqtt's WebSocket listener")
        assert set(states) <= {"open", "closed", "intermediate", "bad", "invalid"}
        assert driver.find_element("id", "broker-state").text == "connected"
        assert "commands are off" in driver.find_element("id", "control-state").text
        driver.save_screenshot(str(tmp_path / "demo.png"))
        assert console_errors(driver) == []
    finally:
        if driver is not None:
            quit_chromium(driver)
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert "demo: mimic on http://127.0.0.1:" in err, err[-2000:]


def test_gridgate_hmi_serves_the_site_of_its_config(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "hmi", "--config", str(EXAMPLE), "--ws-url", "ws://127.0.0.1:9001",
                             "--broker", f"mqtt://127.0.0.1:{free_port()}", "--port", str(port), "--duration", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        site = wait_until(lambda: json.loads(_get(f"http://127.0.0.1:{port}/site.json")[2]), 30, "gridgate hmi serving")
        assert site["gateway"] == "kgm-gw1" and site["wsUrl"] == "ws://127.0.0.1:9001"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"hmi: http://127.0.0.1:{port}/" in out
    assert "is not reachable now" in err  # --broker is checked at start and a dead one named
