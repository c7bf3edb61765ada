"""Large configs: parsed data cached by content hash; gateway-only loading drops the emulator's parts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config
from gateway.site import configcache
from gateway.site.load import ConfigError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import site  # noqa: E402


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def big() -> dict:
    return site(250, 5, 1.0)  # loaded with isolate=True: the path files above 512 kB take


def test_second_load_comes_from_the_cache_and_equals_the_first(tmp_path, cache, big) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(big, sort_keys=False))
    first = load_config(path, isolate=True)
    entries = list(cache.glob("config-*.marshal"))
    assert len(entries) == 1
    assert entries[0].stat().st_mode & 0o077 == 0  # owner only
    assert configcache.get(path.read_bytes()) is not None
    second = load_config(path, isolate=True)
    assert second == first
    assert len(second.devices) == 5 and sum(len(d.points) for d in second.devices) == 250


def test_damaged_entry_is_ignored_and_an_edited_file_never_meets_a_stale_one(tmp_path, cache, big) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(big, sort_keys=False))
    load_config(path, isolate=True)
    (entry,) = cache.glob("config-*.marshal")
    blob = bytearray(entry.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # a flipped byte somewhere in the data
    entry.write_bytes(bytes(blob))
    assert configcache.get(path.read_bytes()) is None
    assert load_config(path, isolate=True).site.name == "BENCH"  # parsed again

    edited = dict(big, site={"name": "EDITED"})
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    assert load_config(path, isolate=True).site.name == "EDITED"


def test_errors_from_cached_data_still_name_path_and_line(tmp_path, cache, big) -> None:
    bad = yaml.safe_load(yaml.safe_dump(big))
    bad["devices"][3]["points"][7]["address"] = 70000
    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(bad, sort_keys=False)
    path.write_text(text)
    configcache.put(path.read_bytes(), bad)  # as if an earlier run had parsed it
    with pytest.raises(ConfigError) as e:
        load_config(path, isolate=True)
    (problem,) = e.value.problems
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "address: 70000" in t)
    assert problem.startswith("devices[3].points[7].address:"), problem
    assert f"(line {line})" in problem, problem


def test_cache_off_and_unwritable_cache_still_load(tmp_path, monkeypatch, big) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(big, sort_keys=False))
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", "off")
    assert configcache.cache_dir() is None
    assert load_config(path, isolate=True).site.name == "BENCH"
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", str(blocker / "cache"))
    assert load_config(path, isolate=True).site.name == "BENCH"


@pytest.mark.parametrize("isolate", [False, True])
def test_gateway_only_drops_signals_and_faults_but_keeps_the_rest(tmp_path, cache, isolate) -> None:
    data = site(40, 2, 1.0)
    data["devices"][0]["points"][0]["faults"] = [{"kind": "stuck"}]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    full = load_config(path, isolate=isolate)
    assert full.devices[0].points[0].signal is not None and full.devices[0].points[0].faults
    slim = load_config(path, isolate=isolate, gateway_only=True)
    for d_full, d_slim in zip(full.devices, slim.devices):
        for a, b in zip(d_full.points, d_slim.points):
            assert b.signal is None and b.faults == []
            assert (a.name, a.address, a.scale, a.measurement) == (b.name, b.address, b.scale, b.measurement)
            assert a.model_dump(exclude={"signal", "faults"}) == b.model_dump(exclude={"signal", "faults"})
    # the per-instance sets of given field names are shared (memory), with unchanged content
    slim_points = [p for d in slim.devices for p in d.points]
    assert len({id(p.__pydantic_fields_set__) for p in slim_points}) == 1  # signal, faults: assigned on all
    assert len({id(p.measurement.__pydantic_fields_set__) for p in slim_points}) == 1
    full_points = [p for d in full.devices for p in d.points]
    for a, b in zip(full_points, slim_points):
        assert a.model_dump(exclude_unset=True, exclude={"signal", "faults"}) == \
            b.model_dump(exclude_unset=True, exclude={"signal", "faults"})
