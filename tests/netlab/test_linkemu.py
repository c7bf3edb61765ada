"""The userspace link emulator: shaping arithmetic, fault schedules, and measured RTT and
partition behaviour across real namespaces."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import time

import pytest

from devices.netlab import Lab, load_profile
from devices.netlab.faults import fault_down, link_down
from devices.netlab.linkemu import Shaper
from devices.netlab.profile import Fault
from tests.netlab.conftest import (
    PY,
    collect,
    listeners,
    needs_lab,
    needs_tun,
    subscriber,
    zone_broker,
)


def test_shaper_delay_jitter_bounds_and_order() -> None:
    s = Shaper(delay_ms=100, jitter_ms=20, loss_pct=0, rate_kbit=None, rng=random.Random(1))
    outs = [s.admit(now=i * 0.001, size=100) for i in range(500)]
    delays = [o - i * 0.001 for i, o in enumerate(outs)]
    assert all(o is not None for o in outs)
    assert min(delays) >= 0.080 - 1e-9 and max(delays) <= 0.120 + 0.02  # +20 ms: in-order clamp
    assert outs == sorted(outs)
    assert s.stats.delivered == 500 and s.stats.lost == 0


def test_shaper_rate_serialises_back_to_back_packets() -> None:
    s = Shaper(delay_ms=0, jitter_ms=0, loss_pct=0, rate_kbit=20)
    outs = [s.admit(now=0.0, size=250) for _ in range(4)]  # 250 B at 20 kbit/s = 0.1 s each
    assert outs == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_shaper_loss_and_queue_and_fault_drops_are_counted() -> None:
    s = Shaper(delay_ms=0, jitter_ms=0, loss_pct=5, rate_kbit=None, rng=random.Random(7))
    for i in range(4000):
        s.admit(i * 0.01, 100)
    assert 0.04 < s.stats.lost / 4000 < 0.06
    assert s.stats.lost + s.stats.delivered == 4000
    q = Shaper(delay_ms=1000, jitter_ms=0, loss_pct=0, rate_kbit=None, queue_packets=10)
    assert sum(q.admit(0.0, 100) is None for _ in range(15)) == 5 and q.stats.queue_drops == 5
    assert q.admit(0.0, 100, down=True) is None and q.stats.fault_drops == 1
    assert q.stats.packets == 16


def test_fault_schedules() -> None:
    flap = Fault(kind="flap", period_s=10, down_s=2)
    assert [fault_down(flap, t) for t in (0, 7.9, 8.0, 9.9, 10.0, 18.5)] == [False, False, True, True, False, True]
    part = Fault(kind="partition", at_s=5, duration_s=3)
    assert [fault_down(part, t) for t in (4.9, 5.0, 7.9, 8.0)] == [False, True, True, False]
    mw = Fault(kind="maintenance-window", start="02:00", duration_s=1800)
    day = 1_700_000_000 - 1_700_000_000 % 86400
    assert [fault_down(mw, 0, day + s) for s in (7199, 7200, 8999, 9000)] == [False, True, True, False]
    assert link_down([part, flap], 6) and not link_down([part, flap], 0)


def _median_rtt(lab: Lab, count: int, interval: float) -> tuple[float, int]:
    r = lab.run_in("gateway", [PY, "-m", "devices.netlab.probe", "rtt", f"{lab.address('control', 'gateway')}:1883",
                               "--count", str(count), "--interval", str(interval), "--timeout", "2.5"], timeout=60)
    assert r.returncode == 0, r.stderr
    samples = [x for x in json.loads(r.stdout) if x is not None]
    return statistics.median(samples), len(samples)


@needs_lab
@needs_tun
@pytest.mark.netns
@pytest.mark.parametrize("name,count,interval", [("wan-cellular", 30, 0.04), ("wan-radio-mesh", 20, 0.15)])
def test_wan_rtt_within_20_percent_of_profile(name: str, count: int, interval: float) -> None:
    emu = next(link.emulate for link in load_profile(name).links if link.emulate)
    # a TCP handshake is one round trip: SYN up, SYN/ACK down (60-byte IP packets each)
    expected = 2 * emu.delay_ms / 1000 + 60 * 8 / (emu.rate_up_kbit * 1000) + 60 * 8 / (emu.rate_down_kbit * 1000)
    with Lab(name) as lab, listeners(lab, [1883], zones=["control"]):
        median, n = _median_rtt(lab, count, interval)
        stats = lab.link("north").stats()
    assert n >= count * 0.8
    assert expected * 0.8 <= median <= expected * 1.2, (median, expected)
    assert stats["up"]["packets"] >= count and stats["down"]["delivered"] >= n
    assert lab.info["netem"] is False or lab.info["emulated"] == []


@needs_lab
@needs_tun
@pytest.mark.netns
def test_gateway_spool_absorbs_a_partition_and_drains_after(tmp_path) -> None:  # noqa: ANN001
    """The gateway's own northbound path (SQLite spool + MqttPublisher, keepalive 1 s) in the
    gateway zone: a 3 s partition outlives the MQTT session, values spool meanwhile, and after
    the heal every one arrives (QoS 1: duplicates allowed, loss not) and the spool is empty."""
    with Lab("wan-cellular") as lab, zone_broker(lab, "control", tmp_path) as broker:
        sub = subscriber(lab, "control", broker, "gg/spool", count=40, timeout=20, unique=True)
        pub = lab.popen("gateway", [PY, "-m", "tests.netlab.spool_actor", lab.address("control", "gateway"), "1883",
                                    "gg/spool", "--spool", str(tmp_path / "spool.db"), "--count", "40", "--interval", "0.1"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        link = lab.link("north")
        time.sleep(1.0)
        link.partition()
        time.sleep(3.0)
        cut = link.heal()
        out, err = pub.communicate(timeout=30)
        msgs = collect(sub, 30)
    assert pub.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["drained"] is True and stats["left_in_spool"] == 0 and not stats["dropped"], stats
    print("spool across partition:", {k: stats[k] for k in ("published", "acked", "resent", "reconnects")})
    assert cut["up"]["fault_drops"] > 0 and cut["link_down"] is False
    seqs = [m["payload"]["seq"] for m in msgs]
    assert sorted(set(seqs)) == list(range(40)), seqs  # complete
    assert len([m for m in msgs if m["rx"] - m["payload"]["t"] > 1.0]) >= 10  # held back during the cut


@needs_lab
@needs_tun
@pytest.mark.netns
def test_scheduled_flap_from_profile_drops_packets() -> None:
    prof = load_profile("wan-cellular").model_dump(by_alias=True)
    prof["links"][1]["faults"] = [{"kind": "flap", "period_s": 1.0, "down_s": 0.5}]
    from devices.netlab import parse_profile

    with Lab(parse_profile(prof, "test")) as lab, listeners(lab, [1883], zones=["control"]):
        r = lab.run_in("gateway", [PY, "-m", "devices.netlab.probe", "rtt", f"{lab.address('control', 'gateway')}:1883",
                                   "--count", "20", "--interval", "0.1", "--timeout", "0.4"], timeout=30)
        samples = json.loads(r.stdout)
        stats = lab.link("north").stats()
    assert stats["up"]["fault_drops"] > 0
    lost = sum(x is None for x in samples)
    assert 3 <= lost <= 17, samples  # about half the handshakes fall into down phases
