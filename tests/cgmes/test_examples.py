"""Every shipped example site exports as CGMES, imports back and validates, keeping its mRIDs and levels."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cgmes.export import export
from gateway.cgmes.importer import build_site
from gateway.cgmes.model import read
from gateway.cim import build_catalog
from gateway.config import Config, load_config
from tests.cgmes.rdfcheck import graph, mrid, typed

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_exports_imports_and_validates(tmp_path, path):
    cfg = load_config(path)
    doc = export(cfg)["eq"]
    g = graph(doc)  # rdflib: an independent reader
    ms = {mrid(g, m) for c in ("Analog", "Discrete", "Accumulator") for m in typed(g, c)}
    assert ms == {e.measurement["mRID"] for e in build_catalog(cfg).values()} and ms
    (tmp_path / "eq.xml").write_bytes(doc)
    back = Config.model_validate(build_site(read([tmp_path / "eq.xml"])).site)
    assert {e.measurement["mRID"] for e in build_catalog(back).values()} == ms
    for s, b in zip(cfg.substations, back.substations, strict=True):
        assert [(v.name, v.base_voltage_kv, v.high_limit_kv, v.low_limit_kv) for v in s.levels()] == \
               [(v.name, v.base_voltage_kv, v.high_limit_kv, v.low_limit_kv) for v in b.voltage_levels]
        assert [(x.name, s.level_of(x), x.voltage_kv) for x in s.bays] == [(x.name, x.voltage_level, x.voltage_kv) for x in b.bays]
    levels = {mrid(g, v) for v in typed(g, "VoltageLevel")}
    assert levels == {str(v.mrid) for s in back.substations for v in s.voltage_levels}
