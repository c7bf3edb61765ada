"""Reachability matrices of the segmented and one-way profiles, with real TCP connects
between real namespaces (what connects, what times out)."""

from __future__ import annotations

import os

import pytest

from devices.netlab import Lab
from tests.netlab.conftest import (
    PY,
    collect,
    compromise,
    listeners,
    needs_lab,
    needs_tun,
    probe_many,
    subscriber,
    zone_broker,
)

pytestmark = [needs_lab, pytest.mark.netns]

PORTS = [502, 1883, 8080, 2222]

# (from, to) → ports that must connect; every other port must time out (dropped, no RST)
SEGMENTED = {
    ("gateway", "field"): {502},
    ("gateway", "control"): {1883},
    ("control", "gateway"): {8080},
    ("field", "gateway"): set(),
    ("field", "control"): set(),
    ("control", "field"): set(),
}
ONE_WAY = {
    ("gateway", "field"): {502},
    ("gateway", "control"): {1883},
    ("control", "gateway"): set(),
    ("field", "gateway"): set(),
    ("field", "control"): set(),
    ("control", "field"): set(),
}


def _expect(open_ports: set[int]) -> dict[int, str]:
    return {p: "open" if p in open_ports else "timeout" for p in PORTS}


@pytest.mark.parametrize("name,matrix", [("segmented", SEGMENTED), ("one-way", ONE_WAY)])
def test_matrix(name: str, matrix: dict) -> None:
    with Lab(name) as lab, listeners(lab, PORTS):
        got = probe_many(lab, list(matrix), PORTS)
        counters = {z: lab.counters(z) for z in lab.zones()}
    assert got == {pair: _expect(ports) for pair, ports in matrix.items()}
    # every blocked attempt was dropped and counted by the source's own output policy
    blocked = sum(len(PORTS) - len(ports) for ports in matrix.values())
    assert sum(c["output/dropped"] for c in counters.values()) >= blocked
    assert counters["gateway"]["output/allow.0"] >= 1  # gateway → field polling went through its rule


def test_segmented_gateway_never_forwards_even_if_ends_are_compromised() -> None:
    """Field and control have routes via the gateway; with their own filters flushed the
    gateway's forward drop (and ip_forward=0) still keeps them apart, both ways."""
    with Lab("segmented") as lab, listeners(lab, PORTS):
        compromise(lab, "field")
        compromise(lab, "control")
        got = probe_many(lab, [("control", "field"), ("field", "control"), ("control", "gateway")], PORTS)
        assert got[("control", "field")] == _expect(set())
        assert got[("field", "control")] == _expect(set())
        # the gateway still has its own policy: a port it does not allow stays closed
        assert got[("control", "gateway")] == _expect({8080})
        r = lab.run_in("gateway", ["cat", "/proc/sys/net/ipv4/ip_forward"])
        assert r.stdout.strip() == "0"


def test_one_way_nothing_reaches_gateway_or_field_from_a_compromised_control_zone() -> None:
    with Lab("one-way") as lab, listeners(lab, PORTS):
        compromise(lab, "control")
        got = probe_many(lab, [("control", "gateway"), ("control", "field"), ("gateway", "control")], PORTS)
        assert got[("control", "gateway")] == _expect(set())
        assert got[("control", "field")] == _expect(set())
        # the gateway's own northbound reach is only the broker port
        assert got[("gateway", "control")] == _expect({1883})
        assert lab.profile.gateway.subscribe is False and lab.profile.gateway.accept_commands is False


@needs_tun
def test_no_default_route_in_any_zone() -> None:
    with Lab("wan-cellular") as lab:
        for z in lab.plan.zones:
            r = lab.run_in(z, ["ip", "route", "show", "default"])
            assert r.returncode == 0 and r.stdout.strip() == "", (z, r.stdout)


def test_one_way_gateway_publishes_and_control_subscriber_sees_values(tmp_path) -> None:  # noqa: ANN001
    with Lab("one-way") as lab, zone_broker(lab, "control", tmp_path) as broker:
        sub = subscriber(lab, "control", broker, "gg/oneway", count=20, timeout=15)
        r = lab.run_in("gateway", [PY, "-m", "tests.netlab.mqtt_actor", "pub", lab.address("control", "gateway"), "1883",
                                   "gg/oneway", "--count", "20", "--interval", "0.01"], timeout=30)
        assert r.returncode == 0, r.stderr
        msgs = collect(sub, 20)
    assert [m["payload"]["seq"] for m in msgs] == list(range(20))
    assert [m["payload"]["value"] for m in msgs] == [i * 1.5 for i in range(20)]
    assert all(0 <= m["rx"] - m["payload"]["t"] < 5 for m in msgs)


@pytest.mark.skipif(os.geteuid() != 0, reason="setns into lab zones from the host needs root")
async def test_one_process_hosts_listeners_in_two_zones() -> None:
    """A host-side asyncio server on sockets created inside field and control (setns per
    thread); probes from the gateway zone reach both, each on its own zone address."""
    import asyncio

    served: list[str] = []

    def handler(name: str):  # noqa: ANN202
        async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            served.append(name)
            w.close()
        return h

    with Lab("segmented") as lab:
        servers = [await asyncio.start_server(handler(z), sock=lab.socket(z, 502 if z == "field" else 1883))
                   for z in ("field", "control")]
        got = await asyncio.to_thread(probe_many, lab, [("gateway", "field"), ("gateway", "control")], [502, 1883])
        for s in servers:
            s.close()
    assert got == {("gateway", "field"): {502: "open", 1883: "timeout"},
                   ("gateway", "control"): {502: "timeout", 1883: "open"}}
    assert sorted(served) == ["control", "field"]
