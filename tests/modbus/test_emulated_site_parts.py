"""A large site's first start read a part at a time on two processes (gateway/chunkload.py,
devices/emusite.py ``_build_in_parts``) gives exactly what loading it whole gives (the compiled
plan, endpoints and fault API tables the cache keeps), and ``gridgate validate``'s summary
(gateway/sitesummary.py) likewise; a file with a problem that no single part sees is loaded whole,
so it gets exactly the errors it got before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devices import emucache, emusite
from gateway import chunkload, sitesummary
from gateway.site import isolate, load
from gateway.site.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _site(devices: int = 12) -> dict:
    def dev(i: int) -> dict:
        return {"name": f"m{i}", "kind": "meter", "protocol": "modbus", "port": 16100 + i, "enabled": i != 4,
                "points": [
                    {"name": "P", "table": "holding", "address": 0, "type": "int32", "scale": 0.01,
                     "measurement": {"equipment": f"SUB/B{i % 3}/L{i}", "type": "ActivePower"},
                     "signal": {"kind": "sine", "mean": 100.0 * (i + 1), "amplitude": 20, "period": 60, "noise": 1.5}},
                    {"name": "V", "table": "input", "address": 4, "type": "float32",
                     "measurement": {"equipment": f"SUB/B{i % 3}/L{i}", "type": "Voltage" if i == 7 else "PhaseVoltage",
                                     "phases": "A" if i != 7 else "AB"},
                     "signal": {"kind": "random_walk", "start": 230, "step": 0.5, "revert": 0.1},
                     "faults": [{"kind": "noise", "sigma": 2.0}]},
                    {"name": "CB", "table": "coil", "address": 1, "type": "bool", "offset": 1,
                     "measurement": {"equipment": f"SUB/B{i % 3}/L{i}", "type": "SwitchPosition"},
                     "signal": {"kind": "discrete", "initial": 2, "min": 1, "max": 2}},
                ]}
    return {"site": {"name": "PARTS"}, "gateway": {"id": "gw-parts"},
            "substations": [{"name": "SUB", "bays": [{"name": f"B{b}", "equipment": [
                {"name": f"L{i}", "type": "EnergyConsumer"} for i in range(devices) if i % 3 == b]} for b in range(3)]}],
            "devices": [dev(i) for i in range(devices)]}


@pytest.fixture
def small_parts(monkeypatch, tmp_path):
    """Every file counts as large and is cut in parts of ~1.5 devices' text: several parts, a helper process."""
    monkeypatch.setattr(isolate, "ISOLATE_BYTES", 0)
    monkeypatch.setattr(sitesummary, "ISOLATE_BYTES", 0)
    monkeypatch.setattr(chunkload, "PART_BYTES", 1500)
    monkeypatch.setattr(chunkload, "_two_cores", lambda: True)
    monkeypatch.setattr(load, "_fast_load", None)  # the path of a build without the C YAML builder
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", str(tmp_path / "cache"))


def _write(tmp_path: Path, raw: dict | str, name: str = "site.yaml") -> Path:
    p = tmp_path / name
    p.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return p


@pytest.mark.parametrize("faults", [True, False])
@pytest.mark.parametrize("only,shard", [(None, None), (["m9", "m1", "m2"], None), (None, (1, 3))])
def test_a_site_read_in_parts_compiles_to_what_the_whole_file_does(small_parts, tmp_path, faults, only, shard):
    path = _write(tmp_path, _site())
    parts = chunkload.load_parts(path, lambda cfg, mrids: [d.name for d in cfg.devices])
    assert parts is not None and len(parts) >= 4 and sum(parts, []) == [f"m{i}" for i in range(12)]
    split = emusite._build_in_parts(path, 7, only, shard, faults)
    whole = emusite._build_whole(path, 7, only, shard, faults)
    assert split is not None
    assert emucache._encode(split) == emucache._encode(whole)
    assert [(i, e.name) for i, e in split.devices] == [(i, e.name) for i, e in whole.devices]
    assert "m4" not in split.known and split.plan.names == whole.plan.names
    if faults:
        assert split.faults.to_data() == whole.faults.to_data() and split.faults.position == whole.faults.position


def test_the_loader_child_takes_the_parts_path_and_caches_it(small_parts, tmp_path):
    path = _write(tmp_path, _site())
    site = emusite.load(path, 7, faults=True)  # in the forked loader child, as `gridgate emulate` does
    assert emucache._encode(site) == emucache._encode(emusite._build_whole(path, 7, None, None, True))
    assert emucache.get(path.read_bytes(), emusite._options(7, None, None, True)) is not None


def _edit(raw: dict, case: str) -> dict:
    devs = raw["devices"]
    if case == "a name in two parts":
        devs[10]["name"] = "m1"
    elif case == "a port in two parts":
        devs[11]["port"] = devs[0]["port"]
    elif case == "a disabled device's port taken by a later one":
        devs[9]["port"] = devs[4]["port"]
    elif case == "an mRID in two parts":
        devs[0]["points"][0]["measurement"]["mrid"] = devs[11]["points"][0]["measurement"]["mrid"] = \
            "00000000-0000-4000-8000-000000000001"
    elif case == "a measurement in two parts":
        devs[11]["points"][0]["measurement"] = dict(devs[0]["points"][0]["measurement"])
    elif case == "an error in the last part":
        devs[11]["points"][1]["address"] = 70000
    elif case == "a point the firmware refuses, then an error in the last part":
        devs[1]["points"][2]["value_map"] = {0: 5, 1: 9}  # a bool register cannot carry it (devices/emulator.py)
        devs[11]["points"][1]["address"] = 70000
    elif case == "an unknown key in the rest of the file":
        raw["gateway"]["colour"] = "red"
    return raw


CASES = ["a name in two parts", "a port in two parts", "a disabled device's port taken by a later one",
         "an mRID in two parts", "a measurement in two parts", "an error in the last part",
         "a point the firmware refuses, then an error in the last part", "an unknown key in the rest of the file"]


@pytest.mark.parametrize("case", CASES)
def test_a_problem_no_part_sees_alone_falls_back_to_the_whole_load(small_parts, tmp_path, case):
    path = _write(tmp_path, _edit(_site(), case))
    assert chunkload.load_parts(path, lambda cfg, mrids: True) is None
    assert emusite._build_in_parts(path, 7, None, None, True) is None
    with pytest.raises(ConfigError) as split:
        emusite.build(path, 7, cache=True, faults=True)
    with pytest.raises(ConfigError) as whole:
        emusite._build_whole(path, 7, None, None, True)
    assert split.value.problems == whole.value.problems and split.value.problems
    with pytest.raises(ConfigError) as summary:
        sitesummary.summary(path)
    assert summary.value.problems == whole.value.problems


def test_a_yaml_error_in_a_part_falls_back_to_the_whole_load(small_parts, tmp_path):
    text = yaml.safe_dump(_site(), sort_keys=False).replace("name: m9\n", "name: [m9\n")
    path = _write(tmp_path, text)
    assert chunkload.load_parts(path, lambda cfg, mrids: True) is None
    with pytest.raises(ConfigError) as e:
        emusite.build(path, 7, cache=True)
    assert "not valid YAML" in e.value.problems[0] and "line" in e.value.problems[0]


def test_validate_summary_in_parts_is_the_whole_file_s(small_parts, tmp_path):
    from gateway.config import load_config

    path = _write(tmp_path, _site())
    got = sitesummary.summary(path)
    assert got == sitesummary._of(load_config(path, isolate=False))
    assert got["points"] == 36 and len(got["devices"]) == 12 and len(got["notes"]) == 1
    assert got["notes"][0].startswith("1 point use measurement type Voltage")


def test_gridgate_validate_of_a_large_file_prints_the_summary(tmp_path):
    raw = _site(12)
    path = _write(tmp_path, raw)
    pad = "# " + "x" * 1000 + "\n"
    big = _write(tmp_path, path.read_text().replace("\n- name: m", "\n" + pad * 60 + "- name: m"), "big.yaml")
    assert big.stat().st_size > isolate.ISOLATE_BYTES
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "validate", "--json", str(big)], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={"GRIDGATE_CACHE_DIR": "off", "PATH": ""})
    got = json.loads(out.stdout)
    assert got["valid"] is True and got["points"] == 36 and list(got["devices"]) == [f"m{i}" for i in range(12)]
    text = subprocess.run([sys.executable, "-m", "gateway.cli", "validate", str(big)], cwd=ROOT, capture_output=True,
                          text=True, check=True, env={"GRIDGATE_CACHE_DIR": "off", "PATH": ""})
    assert text.stdout == f"{big}: OK — site PARTS, 12 devices (12 modbus), 36 points\n"


def test_with_the_c_yaml_builder_a_large_file_is_loaded_whole(monkeypatch, tmp_path) -> None:
    """The parts compose PyYAML node trees; with libyaml's events built straight into data one process is faster
    (9,500 devices cold: 12.1 s against 22.6 s), so the parts are the path of a build without the builder."""

    monkeypatch.setattr(chunkload, "PART_BYTES", 1500)
    path = _write(tmp_path, _site())
    monkeypatch.setattr(load, "_fast_load", None)
    assert chunkload.load_parts(path, lambda cfg, mrids: True) is not None
    monkeypatch.setattr(load, "_fast_load", lambda text: NotImplemented)
    assert chunkload.load_parts(path, lambda cfg, mrids: True) is None
