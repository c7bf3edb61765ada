"""Profile files load, and bad profiles fail with the YAML path and the fix."""

from __future__ import annotations

import pytest

from devices.netlab import ProfileError, available_profiles, load_profile, parse_profile
from devices.netlab.plan import build_plan

REQUIRED = {"flat", "segmented", "one-way", "data-diode", "air-gapped", "wan-cellular", "wan-radio-mesh"}


def test_all_issue_profiles_exist_and_load() -> None:
    assert REQUIRED <= set(available_profiles())
    for name in REQUIRED:
        p = load_profile(name)
        assert p.name == name
    assert load_profile("flat").flat and not load_profile("segmented").flat


def test_wan_profile_figures_match_the_issue() -> None:
    cell = next(l.emulate for l in load_profile("wan-cellular").links if l.emulate)
    mesh = next(l.emulate for l in load_profile("wan-radio-mesh").links if l.emulate)
    assert (cell.delay_ms, cell.jitter_ms, cell.loss_pct, cell.rate_up_kbit, cell.rate_down_kbit) == (35, 10, 1, 2000, 8000)
    assert (mesh.delay_ms, mesh.jitter_ms, mesh.loss_pct, mesh.rate_up_kbit, mesh.rate_down_kbit) == (250, 80, 5, 20, 20)


def test_air_gapped_has_no_path_north_and_diode_has_static_neighbours() -> None:
    plan = build_plan(load_profile("air-gapped"))
    assert not any("control" in (s.zone_a, s.zone_b) for s in plan.segments)
    diode = build_plan(load_profile("data-diode"))
    assert diode.neighbours["gateway"] and diode.neighbours["control"]
    assert 'hook ingress device "to-control"' in diode.nft["gateway"]


BASE = {"name": "t", "zones": {"field": {}, "gateway": {}}, "links": [{"name": "south", "a": "field", "b": "gateway"}]}


@pytest.mark.parametrize(
    "patch,where,fix",
    [
        ({"links": [{"name": "south", "a": "field", "b": "plant"}]}, "links.0.b", "define it under zones"),
        ({"links": [{"name": "south", "a": "field", "b": "gateway", "subnet": "192.168.1.0/24"}]}, "links.0.subnet", "10.200.0.0/16"),
        ({"allow": [{"from": "field", "to": "gateway", "ports": [70000]}]}, "allow.0.ports", "1..65535"),
        ({"links": [{"name": "south", "a": "field", "b": "gateway", "emulate": {"delay_ms": 10, "jitter_ms": 20}}]},
         "links.0.emulate", "must not exceed"),
        ({"links": [{"name": "south", "a": "field", "b": "gateway", "emulate": {}, "faults": [{"kind": "flap"}]}]},
         "links.0.faults.0", "needs period_s, down_s"),
        ({"zonez": {}}, "zonez", "Extra inputs"),
        ({"zones": {"field": {}, "gateway": {}, "control": {}},
          "links": [{"name": "south", "a": "field", "b": "gateway", "subnet": "10.200.5.0/24"},
                    {"name": "north", "a": "gateway", "b": "control", "subnet": "10.200.5.128/25"}]},
         "links.1.subnet", "overlaps links.0.subnet"),
    ],
)
def test_bad_profiles_name_the_path_and_the_fix(patch: dict, where: str, fix: str) -> None:
    with pytest.raises(ProfileError) as e:
        parse_profile({**BASE, **patch}, "configs/profiles/bad.yaml")
    msg = str(e.value)
    assert "configs/profiles/bad.yaml" in msg and fix in msg
    assert where in msg or where.split(".")[0] in msg


def test_unknown_profile_lists_the_choices() -> None:
    with pytest.raises(ProfileError, match="choose one of: .*segmented"):
        load_profile("no-such-profile")


def test_flat_lab_is_todays_loopback_behaviour() -> None:
    from devices.netlab import Lab

    with Lab("flat") as lab:
        assert lab.holder_pid is None and lab.address("anything") == "127.0.0.1"
        r = lab.run_in("gateway", ["sh", "-c", "echo $PPID"])
        assert r.returncode == 0 and r.stdout.strip().isdigit()


def test_unknown_zone_and_link_are_named() -> None:
    from devices.netlab import Lab

    lab = Lab("segmented")
    with pytest.raises(KeyError, match="no zone 'plant'.*field"):
        lab.argv_in("plant", ["true"])
    with pytest.raises(KeyError, match="no emulated link 'north'"):
        lab.link("north")
