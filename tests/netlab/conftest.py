"""Fixtures for the network lab: skip (with the reason) where namespaces are unavailable."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

from devices.netlab import Lab, LabUnavailable, check_capabilities
from tests.support.mosquitto import mosquitto_binary

PY = sys.executable


from tests.support.lab import needs_lab  # noqa: F401 (re-exported)


def _tun_reason() -> str | None:
    try:
        check_capabilities(needs_tun=True)
    except LabUnavailable as e:
        return str(e)
    return None


#: emulated (WAN) links need the userspace emulator's TUN device
needs_tun = pytest.mark.skipif(_tun_reason() is not None, reason=f"link emulator unavailable: {_tun_reason()}")


@contextmanager
def listeners(lab: Lab, ports: list[int], zones: list[str] | None = None) -> Iterator[None]:
    """TCP listeners on ``ports`` in each zone, so a probe can tell open from filtered."""
    procs = [lab.popen(z, [PY, "-m", "devices.netlab.probe", "listen", *map(str, ports)],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for z in (zones or lab.zones())]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    try:
        yield
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(5)


def probe_many(lab: Lab, pairs: list[tuple[str, str]], ports: list[int], timeout: float = 0.5) -> dict[tuple[str, str], dict[int, str]]:
    """Outcome of TCP connects from each ``src`` to ``dst``'s facing address on each port,
    all pairs probed concurrently (one probe process per pair)."""
    procs = {}
    for src, dst in pairs:
        addr = lab.address(dst, towards=src)
        procs[(src, dst)] = lab.popen(src, [PY, "-m", "devices.netlab.probe", "connect", *(f"{addr}:{p}" for p in ports),
                                            "--timeout", str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for pair, p in procs.items():
        stdout, stderr = p.communicate(timeout=timeout + 20)
        assert p.returncode == 0, stderr
        out[pair] = {int(k.rsplit(":", 1)[1]): v for k, v in json.loads(stdout).items()}
    return out


def probe(lab: Lab, src: str, dst: str, ports: list[int], timeout: float = 0.5) -> dict[int, str]:
    return probe_many(lab, [(src, dst)], ports, timeout)[(src, dst)]


def compromise(lab: Lab, zone: str) -> None:
    """Simulate an attacker owning ``zone``: its own firewall is gone."""
    r = lab.run_in(zone, ["nft", "flush", "ruleset"])
    assert r.returncode == 0, r.stderr


@contextmanager
def zone_broker(lab: Lab, zone: str, tmp_path) -> Iterator[str]:  # noqa: ANN001
    """A real Mosquitto listening on port 1883 of ``zone`` (private namespace: no clashes)."""
    conf = tmp_path / "mosquitto.conf"
    # user root: inside the lab's user namespace setgroups() is not permitted, so do not drop privileges
    conf.write_text("user root\nlistener 1883 0.0.0.0\nallow_anonymous true\npersistence false\nlog_dest stderr\n")
    log = open(tmp_path / "mosquitto.log", "wb")
    p = lab.popen(zone, [mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    addr = lab.address(zone)
    deadline = time.monotonic() + 10
    while ":1883 " not in lab.run_in(zone, ["ss", "-Hltn", "sport = :1883"]).stdout:  # in-zone, no traffic
        assert p.poll() is None, (tmp_path / "mosquitto.log").read_text()
        assert time.monotonic() < deadline, "mosquitto did not listen in the zone within 10 s"
        time.sleep(0.05)
    try:
        yield addr
    finally:
        p.terminate()
        p.wait(5)


def subscriber(lab: Lab, zone: str, host: str, topic: str, count: int, timeout: float, unique: bool = False) -> subprocess.Popen:
    p = lab.popen(zone, [PY, "-m", "tests.netlab.mqtt_actor", "sub", host, "1883", topic, "--count", str(count),
                         "--timeout", str(timeout), *(["--unique"] if unique else [])], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def collect(p: subprocess.Popen, timeout: float) -> list[dict]:
    out, _ = p.communicate(timeout=timeout)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]
