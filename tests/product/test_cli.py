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


def test_url_errors_urllib_finds_are_usage_errors_naming_the_flag() -> None:
    """Port out of range, bad IPv6 brackets, a port that is not a number: urllib's words, our flag and fix, exit 2."""
    for bad in ("mqtt://127.0.0.1:99999", "mqtt://[::1", "mqtt://host:port", "mqtt://127.0.0.1:0"):
        for cmd in (["watch"], ["gateway", "--config", str(SAMPLE)], ["scenario", "run", "stuck-analogue"]):
            r = gg(*cmd, "--broker", bad, "--duration", "1") if cmd[0] != "scenario" else gg(*cmd, "--broker", bad)
            assert r.returncode == 2, (cmd, bad, r.returncode, r.stderr[-500:])
            assert "--broker" in r.stderr and "mqtt://host:port" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = gg("hmi", "--ws-url", "ws://[::1", "--port", "1")
    assert r.returncode == 2 and "--ws-url 'ws://[::1': Invalid IPv6 URL" in r.stderr, r.stderr


def test_demo_against_an_unreachable_broker_exits_3_naming_it() -> None:
    r = gg("demo", "--config", str(SAMPLE), "--broker", "mqtt://127.0.0.1:1", "--duration", "10", "--no-live")
    assert r.returncode == 3, (r.returncode, r.stderr[-1000:])
    assert "cannot reach the MQTT broker mqtt://127.0.0.1:1" in r.stderr and "leave out --broker" in r.stderr
    assert "Traceback" not in r.stderr


def test_metrics_or_mimic_port_in_use_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = gg("emulate", "--config", str(SAMPLE), "--metrics", str(port), "--duration", "2", "--no-fault-api")
        assert r.returncode == 1 and f"--metrics 127.0.0.1:{port}: cannot listen" in r.stderr, r.stderr[-1000:]
        r = gg("hmi", "--ws-url", "ws://127.0.0.1:1", "--port", str(port), "--config", str(SAMPLE), "--duration", "2")
        assert r.returncode == 1 and f"the mimic cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr[-1000:]
        for out in (r.stderr,):
            assert "Traceback" not in out


def test_demo_no_live_prints_the_whole_table_and_the_summary() -> None:
    r = gg("demo", "--config", str(SAMPLE), "--duration", "4", "--no-live", "--no-fault-api")
    assert r.returncode == 0, r.stderr[-1000:]
    summary = [line for line in r.stdout.splitlines() if line.startswith("demo: ")]
    assert len(summary) == 1 and " measurements received in " in summary[0]
    n = int(summary[0].split(" values for ")[1].split()[0])
    rows = [line for line in r.stdout.splitlines() if line.startswith("│ ")]  # one table row per measurement
    assert n >= 3 and len(rows) == n, (n, len(rows), r.stdout[-2000:])
