"""Many gateways on one broker (issue 18): K real `gridgate gateway` processes with distinct
gateway ids on one Mosquitto keep their own topics, client ids, ``seq``, wills and command
paths, and an MQTT 5 shared-subscription consumer group gets each message exactly once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.mosquitto import free_port
from tests.support.mqtt import Collector
from tests.support.sites import MODBUS_POINTS, SITE

ROOT = Path(__file__).resolve().parents[2]
IDS = ["gw-a", "gw-b", "gw-c"]
PREFIX = "gridgate/v1"


def _sites(tmp_path: Path, url: str) -> tuple[Path, list[Path]]:
    """One emulator config with every gateway's meter, and one site file per gateway (its meter only)."""
    devices = [{"name": f"meter-{g}", "kind": "meter", "protocol": "modbus", "port": free_port(),
                "poll_interval": "300ms", "timeout": "1s", "points": MODBUS_POINTS} for g in IDS]
    emu = tmp_path / "emulate.yaml"
    emu.write_text(yaml.safe_dump({**SITE, "devices": devices}, sort_keys=False))
    sites = []
    for g, dev in zip(IDS, devices):
        raw = {**SITE, "devices": [dev]}
        raw["gateway"] = {"id": g, "northbound": {"url": url, "integrity_interval": "1s", "analog_qos": 1,
                                                   "commands": True}}
        path = tmp_path / f"{g}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        sites.append(path)
    return emu, sites


def _seqs(msgs, gw: str) -> list[int]:
    return [m.json["seq"] for m in msgs if m.topic.startswith(f"{PREFIX}/{gw}/meas/")]


async def test_gateways_share_one_broker_without_crossing(tmp_path, mosquitto):
    emu_cfg, sites = _sites(tmp_path, mosquitto.url)
    gg = [sys.executable, "-m", "gateway.cli"]
    emu = subprocess.Popen([*gg, "emulate", "--config", str(emu_cfg), "--no-fault-api"], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gws: dict[str, subprocess.Popen] = {}
    try:
        async with Collector(mosquitto.port, [f"{PREFIX}/+/status", f"{PREFIX}/+/meas/#", f"{PREFIX}/+/cmd/#"]) as ref, \
                Collector(mosquitto.port, [f"$share/cim/{PREFIX}/+/meas/#"]) as g1, \
                Collector(mosquitto.port, [f"$share/cim/{PREFIX}/+/meas/#"]) as g2:
            for g, path in zip(IDS, sites):
                gws[g] = subprocess.Popen([*gg, "gateway", "--config", str(path)], cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

            def status(g: str) -> dict:
                return ref.latest(f"{PREFIX}/{g}/status") or {}

            await ref.wait_for(lambda: all(status(g).get("state") == "online" for g in IDS), 60, "all online")
            await ref.wait_for(lambda: all(len(_seqs(ref.messages, g)) >= 30 for g in IDS), 60, "values of each")

            # topics: each gateway publishes under its own id only, its own meter's values
            for m in ref.messages:
                gw = m.topic.split("/")[2]
                assert gw in IDS, m.topic
                if "/meas/" in m.topic:
                    assert m.json["provenance"]["device"] == f"meter-{gw}", (m.topic, m.json["provenance"])
            # seq: numbered per gateway, each from 1 (subscribed before they started), gap-free
            for g in IDS:
                s = _seqs(ref.messages, g)
                assert s == list(range(1, len(s) + 1)), (g, s[:20])
            # client ids: distinct, so nobody took another's session over (that shows as a reconnect,
            # a will, and a new connectedAt in the online status)
            for g in IDS:
                sts = [m.json for m in ref.messages if m.topic == f"{PREFIX}/{g}/status"]
                assert {x["state"] for x in sts} == {"online"} and len({x["connectedAt"] for x in sts}) == 1, sts
                assert status(g)["stats"]["reconnects"] == 0

            # shared subscription: every value once, to exactly one consumer of the group
            await ref.wait_for(lambda: _seqs(g1.messages, "gw-a") and _seqs(g2.messages, "gw-a"), 30, "both consumers")
            for g in IDS:
                a, b = _seqs(g1.messages, g), _seqs(g2.messages, g)
                assert not set(a) & set(b), (g, sorted(set(a) & set(b))[:10])  # never to both members
                group = sorted(a + b)
                ref_s = _seqs(ref.messages, g)
                lo, hi = max(group[0], ref_s[0]), min(group[-1], ref_s[-1])
                assert hi - lo >= 10
                assert [s for s in group if lo <= s <= hi] == [s for s in ref_s if lo <= s <= hi] == list(range(lo, hi + 1))

            # command path: a request to gw-a is answered by gw-a only, on gw-a's result topic
            ref.client.publish(f"{PREFIX}/gw-a/cmd/no-such-mrid",
                               json.dumps({"id": "c1", "value": 1, "operator": "op", "issued": time.time()}),
                               qos=1)
            await ref.wait_for(lambda: ref.on("/cmd/no-such-mrid/result"), 20, "command result")
            await asyncio.sleep(1.0)
            results = ref.on("/result")
            assert [m.topic for m in results] == [f"{PREFIX}/gw-a/cmd/no-such-mrid/result"]
            assert (results[0].json["id"], results[0].json["reason"]) == ("c1", "not_commandable")

            # will: killing gw-b turns gw-b offline (its own will), the others stay online
            gws["gw-b"].kill()
            gws["gw-b"].wait(10)
            await ref.wait_for(lambda: status("gw-b").get("state") == "offline", 60, "gw-b's will")
            assert status("gw-b")["reason"] == "connection lost"
            n = {g: len(_seqs(ref.messages, g)) for g in ("gw-a", "gw-c")}
            await ref.wait_for(lambda: all(len(_seqs(ref.messages, g)) > n[g] + 3 for g in n), 20, "others go on")
            assert status("gw-a")["state"] == status("gw-c")["state"] == "online"
        async with Collector(mosquitto.port, [f"{PREFIX}/+/status"]) as late:  # retained: what a newcomer sees
            await late.wait_for(lambda: all(late.latest(f"/{g}/status") for g in IDS), 10, "retained status")
            assert [late.latest(f"/{g}/status")["state"] for g in IDS] == ["online", "offline", "online"]
    finally:
        for p in [*gws.values(), emu]:
            if p.poll() is None:
                p.terminate()
        for p in [*gws.values(), emu]:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
