"""The fault API of ``gridgate emulate`` resolves targets over compact tables (devices/scenario/sitetables.py,
handed back by the loader and kept in the compiled-site cache) instead of the config model: the same
points, the same errors and, under the same faults, the same registers tick for tick as the emulator
built from the model."""

from __future__ import annotations

import pytest

from devices import emucache, emusite
from devices.emulator import Emulator
from devices.scenario.inject import Injector
from devices.scenario.resolve import Site, TargetError
from gateway.config import load_config
from tests.modbus.test_emulated_site import T0, image, site

TARGETS = [{"device": "m1"}, {"bay": "SUB/B"}, {"point": "m2/V"}, {"points": ["m0/CB", "m1/P"]}]
BAD = [{"device": "nope"}, {"bay": "SUB/X"}, {"point": "m0/X"}, {"point": "zz/P"},
       {"point": "00000000-0000-0000-0000-000000000000"}]


def test_site_tables_resolve_as_the_model_does(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", str(tmp_path / "cache"))
    path = site(tmp_path)
    cfg = load_config(path)
    built = emusite.build(path, seed=7, only=["m2"], cache=True, faults=True)
    cached = emucache.get(path.read_bytes(), emusite._options(7, ["m2"], None, True))
    assert cached is not None and cached.faults is not None and built.faults is not None
    assert emucache.get(path.read_bytes(), emusite._options(7, ["m2"], None)) is None  # without tables: another entry
    mrids = {f"{d.name}/{p.name}": str(cfg.measurement_mrid(p)) for d in cfg.devices for p in d.points}
    sites = [Site.of(cfg), Site(built.faults), Site(cached.faults)]
    for s in sites:  # every device of the site, not only the one served
        assert s.key_to_mrid == mrids and s.mrid_to_key == {m: k for k, m in mrids.items()}
        assert s.bay_points == {"SUB/B": list(mrids)}
        assert s.device_points["m1"] == ["m1/P", "m1/V", "m1/CB"] and s.protocol == dict.fromkeys(("m0", "m1", "m2"), "modbus")
        assert s.keys() == sorted(mrids) and s.port_of("m1") == 15021
        assert s.point(mrids["m1/V"].upper()) == "m1/V"  # an mRID in any case
    lookups = [(s.points(t), s.devices(t)) for s in sites[1:] for t in [*map(_target, TARGETS)]]
    assert lookups == [(sites[0].points(t), sites[0].devices(t)) for t in map(_target, TARGETS)] * 2
    assert sites[0].points(_target({"bay": "SUB/B"}))[:4] == ["m0/P", "m0/V", "m0/CB", "m1/P"]
    for t in map(_target, BAD):
        errors = []
        for s in sites:
            with pytest.raises(TargetError) as e:
                s.points(t)
            errors.append(str(e.value))
        assert errors[0] == errors[1] == errors[2], errors
    assert "its points: P, V, CB" in str(_error(sites[1], {"point": "m0/X"}))


async def test_faults_on_the_compact_emulator_give_the_model_built_registers(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDGATE_CACHE_DIR", str(tmp_path / "cache"))
    path = site(tmp_path)
    full = Emulator(load_config(path), seed=7)
    compact = Emulator(emusite.build(path, seed=7, cache=True, faults=True))
    cached = Emulator(emucache.get(path.read_bytes(), emusite._options(7, None, None, True)))
    assert compact.cfg is None and cached.cfg is None
    injectors = [Injector(e) for e in (full, compact, cached)]
    v_mrid = injectors[0].site.key_to_mrid["m1/V"]
    faults = [({"point": v_mrid}, {"kind": "stuck", "value": 241.5}), ({"bay": "SUB/B"}, {"kind": "offset", "value": 3}),
              ({"device": "m2"}, {"kind": "drift", "rate": 0.5})]
    for inj in injectors:
        for t, f in faults:
            a = await inj.inject(t, f)
            assert a.points == (["m1/V"] if "point" in t else a.points)
        assert [x["points"] for x in inj.list()] == [x["points"] for x in injectors[0].list()]
    for k in range(30):
        if k == 15:  # clearing a fault re-applies the point's configured one (V: noise) and the others
            for inj in injectors:
                await inj.clear("f1")
        for e in (full, compact, cached):
            e.fw.tick(T0 + 0.1 * k)
        for d in ("m0", "m1", "m2"):
            images = [image(e, d) for e in (full, compact, cached)]
            assert images[0] == images[1] == images[2], (k, d)
        v = full.fw.value(full.fw.index("m1", "V"))
        assert (v == pytest.approx(244.5)) if k < 15 else (v != pytest.approx(244.5))  # stuck + offset, then noisy
    for inj in injectors:
        assert await inj.clear_all() == ["f2", "f3"]


def _target(t: dict):  # noqa: ANN202
    from devices.scenario.model import Target

    return Target.model_validate(t)


def _error(s: Site, t: dict) -> TargetError:
    with pytest.raises(TargetError) as e:
        s.points(_target(t))
    return e.value
