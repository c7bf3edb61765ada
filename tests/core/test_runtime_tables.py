"""A gateway keeps compact runtime tables, not the pydantic model, and restarts from their cache.

The twins must read exactly like the validated model (every field, the helpers drivers call, the
catalog built from them), the cache must never be trusted when damaged or stale, and a restart from
it must not import pydantic or the site models (the RSS this saves is the point of it).
"""

from __future__ import annotations

import json
import logging
import marshal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from gateway.cim import build_catalog
from gateway.config import Config, load_config
from gateway.site import configcache
from gateway.site.errors import ConfigError
from gateway.site.tables import Runtime, TablesError, compact, decode, encode
from gateway.startup import build_id, load_gateway_site

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import site  # noqa: E402

SAMPLES = sorted((ROOT / "gateway/protocols").glob("*/sample-site.yaml"))


def same(model: object, twin: object, where: str = "cfg") -> int:
    """Assert ``twin`` holds what ``model`` holds, field by field; returns the number of values compared."""
    if isinstance(model, BaseModel):
        assert isinstance(twin, Runtime) and not isinstance(twin, BaseModel), where
        assert twin.fields == tuple(type(model).model_fields), where
        return sum(same(getattr(model, f), getattr(twin, f), f"{where}.{f}") for f in twin.fields)
    if isinstance(model, (list, tuple)):
        assert type(twin) is type(model) and len(twin) == len(model), where
        return sum(same(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(model, twin)))
    if isinstance(model, dict):
        assert type(twin) is dict and list(twin) == list(model), where
        return sum(same(v, twin[k], f"{where}[{k!r}]") for k, v in model.items())
    assert type(twin) is type(model) and twin == model, f"{where}: {twin!r} != {model!r}"
    return 1


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.parent.name)
def test_twins_hold_every_value_and_answer_the_helpers_like_the_model(path: Path) -> None:
    cfg = load_config(path, gateway_only=True)
    twin = compact(cfg)
    assert same(cfg, twin) > 50
    for d, td in zip(cfg.devices, twin.devices):
        for p, tp in zip(d.points, td.points):
            assert twin.measurement_mrid(tp) == cfg.measurement_mrid(p)
            for helper in ("width", "command_address"):
                if hasattr(p, helper):
                    v = getattr(p, helper)
                    assert (v() if callable(v) else v) == (getattr(tp, helper)() if callable(v) else getattr(tp, helper))
        if d.protocol == "iec61850":
            assert [td.iec61850.rcb_instances(b) for b in (True, False)] == [d.iec61850.rcb_instances(b) for b in (True, False)]
    a, b = build_catalog(cfg), build_catalog(twin)
    assert list(a) == list(b) and all(a[k] == b[k] for k in a)


def test_equal_scalars_are_shared_and_the_encoding_is_plain_data() -> None:
    cfg = Config.model_validate(site(200, 2, 1.0))
    blob = marshal.dumps(encode(cfg))  # marshal takes only plain data: no code, no classes
    twin = decode(marshal.loads(blob))
    points = [p for d in twin.devices for p in d.points]
    assert len({id(p.table) for p in points}) == 1 and len({id(p.scale) for p in points}) == 1
    assert isinstance(twin.site.name, str) and twin.devices[0].points[0].measurement.kind == "Analog"


def test_decode_refuses_what_is_not_a_gridgate_mixin_or_does_not_fit() -> None:
    cfg = Config.model_validate(site(20, 1, 1.0))
    fmt, classes, value = encode(cfg)
    name, fields, private, mixins = classes[0]
    with pytest.raises(TablesError, match="not a gridgate mixin"):
        decode((fmt, ((name, fields, private, ("os:system",)),) + classes[1:], value))
    with pytest.raises(TablesError, match="not a Rules mixin"):
        decode((fmt, ((name, fields, private, ("gateway.site.tables:Runtime",)),) + classes[1:], value))
    with pytest.raises(TablesError, match="values for"):
        decode((fmt, ((name, fields[:-1], private, mixins),) + classes[1:], value))
    with pytest.raises(TablesError, match="format"):
        decode((fmt + 1, classes, value))
    with pytest.raises(TablesError):
        decode(("not", "tables"))


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", str(d))
    return d


@pytest.fixture()
def big(tmp_path) -> Path:
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(site(300, 3, 1.0), sort_keys=False))
    return path


def _catalog_text(s) -> dict:
    return {k: (e.topic, e.json_prefix, e.catalog_json, e.kind, e.deadband, e.outbox_kind) for k, e in s.catalog.items()}


def test_restart_comes_from_the_cache_and_equals_the_validated_load(cache, big) -> None:
    first = load_gateway_site(big, isolate=True)
    assert first.source == "child" and len(first.catalog) == 300
    (entry,) = cache.glob("tables-*.marshal")
    assert entry.stat().st_mode & 0o077 == 0  # owner only
    assert build_id() in entry.name
    again = load_gateway_site(big, isolate=True)
    assert again.source == "cache"
    assert _catalog_text(again) == _catalog_text(first)
    assert same(load_config(big, gateway_only=True), again.cfg) > 3000
    assert str(again.cfg.measurement_mrid(again.cfg.devices[2].points[99])) == again.catalog["m2/p99"].mrid


def test_damaged_or_altered_entry_is_logged_and_never_trusted(cache, big, caplog) -> None:
    load_gateway_site(big, isolate=True)
    (entry,) = cache.glob("tables-*.marshal")
    blob = bytearray(entry.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # a flipped byte: the checksum fails
    entry.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING):
        s = load_gateway_site(big, isolate=True)
    assert s.source == "child" and len(s.catalog) == 300
    assert any("damaged" in r.getMessage() for r in caplog.records)

    # a well-formed entry whose content does not fit (as if written by other code): refused, parsed again
    payload = configcache.read_entry(entry, bytes)
    n = int.from_bytes(payload[:8], "little")
    fmt, head, lengths, classes = marshal.loads(payload[8:8 + n])
    name, fields, private, _ = classes[0]
    altered = marshal.dumps((fmt, head, lengths, ((name, fields, private, ("builtins:object",)),) + classes[1:]))
    configcache.write_entry(entry, blob=len(altered).to_bytes(8, "little") + altered + payload[8 + n:])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        s = load_gateway_site(big, isolate=True)
    assert s.source == "child" and s.cfg.site.name == "BENCH" and len(s.catalog) == 300
    assert any("not a gridgate mixin" in r.getMessage() for r in caplog.records)

    # a chunk cut short: the lengths no longer add up
    payload = configcache.read_entry(entry, bytes)
    configcache.write_entry(entry, blob=payload[:-10])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_gateway_site(big, isolate=True).source == "child"
    assert any("do not add up" in r.getMessage() for r in caplog.records)


def test_an_edited_file_is_validated_again(cache, big) -> None:
    load_gateway_site(big, isolate=True)
    data = yaml.safe_load(big.read_text())
    data["devices"][1]["points"][4]["address"] = 70000
    big.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as e:
        load_gateway_site(big, isolate=True)
    assert e.value.problems[0].startswith("devices[1].points[4].address:")
    data["devices"][1]["points"][4]["address"] = 4
    data["site"]["name"] = "EDITED"
    big.write_text(yaml.safe_dump(data, sort_keys=False))
    s = load_gateway_site(big, isolate=True)
    assert s.source == "child" and s.cfg.site.name == "EDITED"
    assert s.catalog["m0/p0"].mrid == str(uuid.uuid5(uuid.UUID("6f2f1a0e-6a53-5c9e-9b1e-677269646761"),
                                                       "EDITED/SUB/B0/LV0/p0"))


def test_cache_off_loads_without_entries(tmp_path, monkeypatch, big) -> None:
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", "off")
    assert load_gateway_site(big, isolate=True).source == "child"
    assert load_gateway_site(big, isolate=True).source == "child"
    assert not list(tmp_path.rglob("tables-*"))


RESTART = """
import json, sys
from gateway.cli import build
build("gateway")
from gateway.app import Gateway, GatewayOptions
from gateway.startup import load_gateway_site
s = load_gateway_site(sys.argv[1], isolate=True)
gw = Gateway(s.cfg, GatewayOptions(broker="mqtt://127.0.0.1:1"), catalog=s.catalog)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core", "yaml")
               or m in ("gateway.config", "gateway.site.model", "gateway.protocols.modbus.config"))
print(json.dumps({"source": s.source, "sources": len(gw.sources), "points": len(gw.catalog), "heavy": heavy}))
"""


def test_a_restart_from_the_cache_imports_neither_pydantic_nor_the_site_models(cache, big) -> None:
    def run() -> dict:
        r = subprocess.run([sys.executable, "-c", RESTART, str(big)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env={**__import__("os").environ, "GRIDGATE_CACHE_DIR": str(cache)})
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    first = run()  # validated in the loader child: the parent imports none of it either
    assert first == {"source": "child", "sources": 3, "points": 300, "heavy": []}
    assert run() == {"source": "cache", "sources": 3, "points": 300, "heavy": []}
