"""CLI rough edges a new user hit: each case with its exit code and message."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

GRIDGATE = [sys.executable, "-m", "gateway.cli"]
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "gateway/protocols/modbus/sample-site.yaml"


def gg(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*GRIDGATE, *argv], capture_output=True, text=True, timeout=timeout)


def test_version() -> None:
    r = gg("--version")
    assert r.returncode == 0 and r.stdout.startswith("gridgate ")


def test_watch_on_a_port_that_is_not_a_broker_fails_within_its_duration() -> None:
    with socket.socket() as s:  # accepts TCP, never speaks MQTT
        s.bind(("127.0.0.1", 0))
        s.listen()
        t = time.monotonic()
        r = gg("watch", "--broker", f"mqtt://127.0.0.1:{s.getsockname()[1]}", "--duration", "2")
        took = time.monotonic() - t
    assert r.returncode == 1 and "no MQTT broker answered" in r.stderr, r.stderr
    assert took < 30


def test_gateway_that_delivered_nothing_exits_3_and_says_why() -> None:
    r = gg("gateway", "--config", str(SAMPLE), "--broker", "mqtt://127.0.0.1:1", "--duration", "2")
    assert r.returncode == 3, (r.returncode, r.stderr[-1000:])
    assert "nothing was delivered to mqtt://127.0.0.1:1" in r.stderr


def test_malformed_broker_url_is_a_usage_error_naming_the_flag() -> None:
    for cmd in (["gateway", "--config", str(SAMPLE)], ["watch"]):
        r = gg(*cmd, "--broker", "htp://nowhere")
        assert r.returncode == 2 and "--broker" in r.stderr and "mqtt://host:port" in r.stderr, r.stderr


def test_verbose_works_after_the_subcommand() -> None:
    r = gg("gateway", "--config", str(SAMPLE), "--broker", "mqtt://127.0.0.1:1", "--duration", "1", "-v")
    assert " INFO " in r.stderr or " WARNING " in r.stderr, r.stderr[-1000:]
    assert "unrecognized arguments" not in r.stderr


def test_emulate_unknown_device_is_named() -> None:
    r = gg("emulate", "--config", str(SAMPLE), "--device", "nosuch", "--duration", "1")
    assert r.returncode == 2 and "--device nosuch" in r.stderr and "meter1" in r.stderr, r.stderr


def test_scenario_report_in_a_missing_directory_is_refused_before_running(tmp_path: Path) -> None:
    t = time.monotonic()
    r = gg("scenario", "run", "stuck-analogue", "--report", str(tmp_path / "missing" / "x.html"))
    assert r.returncode == 2 and "is not a writable directory; nothing was run" in r.stderr, r.stderr
    assert time.monotonic() - t < 30


def test_metrics_listen_address_is_checked() -> None:
    r = gg("gateway", "--config", str(SAMPLE), "--broker", "mqtt://127.0.0.1:1", "--metrics", "host:notaport")
    assert r.returncode == 2 and "--metrics" in r.stderr


def test_demo_with_a_device_port_in_use_names_the_device_and_leaves_no_traceback(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(SAMPLE.read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        data["devices"][0]["port"] = s.getsockname()[1]
        site = tmp_path / "site.yaml"
        site.write_text(yaml.safe_dump(data, sort_keys=False))
        r = gg("demo", "--config", str(site), "--duration", "3", "--no-live")
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"device meter1 (modbus) cannot listen on 127.0.0.1:{data['devices'][0]['port']}" in r.stderr
    assert "change devices[0].port" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
