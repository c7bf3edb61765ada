"""Hostile or careless site files: each is refused with the file, the YAML path or line and the fix,
never a traceback, and without the loader using unbounded time or memory."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.core.test_config import BASE, ROOT, error_of, load_text

LAUGHS = "".join(
    f"{c}: &{c} [" + ",".join([f"*{p}"] * 9 if p else ['"lol"'] * 9) + "]\n"
    for p, c in zip([None, "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi")
)


def test_billion_laughs_is_refused_fast_with_a_line(tmp_path: Path) -> None:
    assert len(LAUGHS) < 600
    t0 = time.monotonic()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    msg = error_of(tmp_path, LAUGHS)
    assert "billion laughs" in msg and "line " in msg and "nodes" in msg
    assert time.monotonic() - t0 < 20  # generous on a loaded machine; unbounded would be minutes and gigabytes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 200_000  # KiB


def test_billion_laughs_through_the_cli_is_a_clean_error(tmp_path: Path) -> None:
    f = tmp_path / "lol.yaml"
    f.write_text(LAUGHS)
    p = subprocess.run([sys.executable, "-m", "gateway.cli", "validate", str(f)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "billion laughs" in p.stderr and "Traceback" not in p.stderr


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    msg = error_of(tmp_path, BASE + "extra: &x [1, *x]\n")
    assert "recursive alias" in msg and "line 15" in msg


def test_modest_anchors_still_work(tmp_path: Path) -> None:
    ok = BASE.replace("measurement: {equipment: S1/F1/FDR, type: ThreePhaseActivePower}",
                      "measurement: {equipment: &eq S1/F1/FDR, type: ThreePhaseActivePower}")
    ok = ok.replace("measurement: {equipment: S1/F1/FDR, type: LineCurrent", "measurement: {equipment: *eq, type: LineCurrent")
    pts = load_text(tmp_path, ok).devices[0].points
    assert [p.measurement.equipment for p in pts] == ["S1/F1/FDR", "S1/F1/FDR"]


@pytest.mark.parametrize("prefix,what", [
    ('"grid\\0gate"', "NUL"), ('"grid/+/x"', "'+'"), ('"grid/#"', "'#'"), ('"/grid"', "leading"), ('"a//b"', "empty level"),
])
def test_bad_topic_prefix_names_the_path(tmp_path: Path, prefix: str, what: str) -> None:
    msg = error_of(tmp_path, BASE + f"gateway: {{northbound: {{topic_prefix: {prefix}}}}}\n")
    assert "gateway.northbound.topic_prefix" in msg and what in msg


@pytest.mark.parametrize("value", ["0.0001s", "0.0000001", "0.5ms"])
def test_sub_millisecond_poll_interval_is_refused(tmp_path: Path, value: str) -> None:
    text = BASE.replace("    port: 15999\n", f"    port: 15999\n    poll_interval: {value}\n")
    msg = error_of(tmp_path, text)
    assert "devices[0].poll_interval" in msg and "1 ms" in msg and "line 12" in msg


def test_infinite_durations_are_refused(tmp_path: Path) -> None:
    text = BASE.replace("    port: 15999\n", "    port: 15999\n    timeout: .inf\n")
    msg = error_of(tmp_path, text)
    assert "devices[0].timeout" in msg and "finite" in msg


def test_every_interface_bind_needs_an_opt_in(tmp_path: Path) -> None:
    text = BASE.replace("    port: 15999\n", "    port: 15999\n    host: 0.0.0.0\n")
    msg = error_of(tmp_path, text)
    assert "devices[0].host" in msg and "every network interface" in msg and "bind_all_interfaces" in msg
    ok = text.replace("    host: 0.0.0.0\n", "    host: 0.0.0.0\n    bind_all_interfaces: true\n")
    assert load_text(tmp_path, ok).devices[0].host == "0.0.0.0"


@pytest.mark.parametrize("digits", [30, 5000])
def test_huge_integers_are_refused_with_the_path(tmp_path: Path, digits: int) -> None:
    text = BASE.replace("port: 15999", "port: " + "9" * digits)
    msg = error_of(tmp_path, text)
    assert "devices[0].port" in msg and "out of range" in msg and "line 11" in msg
    assert len(msg) < 2000  # the number is not echoed back in full


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    msg = error_of(tmp_path, BASE + "extra: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "line 15" in msg and ("nesting depth" in msg or "nested too deeply" in msg)


def test_shipped_example_is_still_valid() -> None:
    from gateway.config import load_config

    cfg = load_config(ROOT / "configs" / "primary-substation.yaml")
    assert cfg.devices and all(d.connections.max_connections == 16 for d in cfg.devices)
