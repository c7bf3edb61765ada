"""Data diode: values cross a one-way UDP link into a broker on the other side; induced
loss (real packets dropped by nftables on the link) is detected and reported as gaps,
repetition and parity FEC repair what they can, and nothing can come back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devices.netlab import Lab
from gateway.conduits.diode import DATA, HEADER, DiodeReceiver, pack, unpack
from gateway.conduits.records import Record
from tests.netlab.conftest import PY, collect, needs_lab, probe, subscriber, zone_broker

PORT = 47000
# byte offsets inside the UDP datagram (8-byte UDP header + diode header), for nft raw matches
TYPE_BITS, AUX_BITS, SEQ_LOW_BYTE_BITS = (8 + 5) * 8, (8 + 6) * 8, (8 + 16 + 7) * 8


def _drop_rule(seqs: set[int], copy0_only: bool) -> str:
    m = f"@th,{TYPE_BITS},8 {DATA} @th,{SEQ_LOW_BYTE_BITS},8 {{ {', '.join(map(str, sorted(seqs)))} }}"
    if copy0_only:
        m += f" @th,{AUX_BITS},16 0"
    return f"udp dport {PORT} {m} counter drop"


def _run(lab: Lab, n: int, drop: set[int], expect: int, copies: int = 1, parity: int = 0,
         copy0_only: bool = False) -> tuple[dict, list[int], dict, int]:
    """Send ``n`` records gateway→control with ``drop`` seqs removed on the wire; return the
    receiver's counters, the seqs a subscriber got, the retained status message and how many
    datagrams nftables dropped."""
    ctl = lab.address("control", "gateway")
    if drop:
        r = lab.run_in("gateway", ["nft", "insert", "rule", "inet", "gridgate", "output", *_drop_rule(drop, copy0_only).split()])
        assert r.returncode == 0, r.stderr
    rx = lab.popen("control", [PY, "-m", "gateway.conduits.run", "diode-receive", "0.0.0.0", str(PORT),
                               "--broker", f"{ctl}:1883", "--grace", "0.3"],
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert rx.stdout.readline().strip() == "ready"
    sub = subscriber(lab, "control", ctl, "gg/diode", count=expect, timeout=6)
    records = "".join(json.dumps({"topic": "gg/diode", "payload": json.dumps({"i": i + 1})}) + "\n" for i in range(n))
    tx = lab.run_in("gateway", [PY, "-m", "gateway.conduits.run", "diode-send", ctl, str(PORT), "--copies", str(copies),
                                "--parity", str(parity), "--heartbeat", "0.2"], input=records, timeout=30)
    assert tx.returncode == 0, tx.stderr
    msgs = collect(sub, 15)
    out, err = rx.communicate("", timeout=15)
    stats = json.loads(out.strip().splitlines()[-1])
    st = subscriber(lab, "control", ctl, "gridgate/diode/status", count=1, timeout=5)
    status = collect(st, 10)[0]["payload"]
    dropped = 0
    if drop:
        ruleset = lab.run_in("gateway", ["nft", "list", "chain", "inet", "gridgate", "output"]).stdout
        line = next(l for l in ruleset.splitlines() if "drop" in l and "@th" in l)
        dropped = int(line.split("packets")[1].split()[0])
        handles = lab.run_in("gateway", ["nft", "-a", "list", "chain", "inet", "gridgate", "output"]).stdout
        handle = next(l for l in handles.splitlines() if "@th" in l).rsplit("handle", 1)[1].split()[0]
        assert lab.run_in("gateway", ["nft", "delete", "rule", "inet", "gridgate", "output", "handle", handle]).returncode == 0
    return stats, [m["payload"]["i"] for m in msgs], status, dropped


@needs_lab
@pytest.mark.netns
def test_diode_link_is_one_way_and_values_arrive(tmp_path: Path) -> None:
    with Lab("data-diode") as lab, zone_broker(lab, "control", tmp_path):
        # nothing initiates back towards the gateway, even from a compromised control zone
        lab.run_in("control", ["nft", "flush", "ruleset"])
        assert set(probe(lab, "control", "gateway", [PORT, 1883, 22]).values()) == {"timeout"}
        # the gateway never ARPs: the receiver's neighbour entry is static
        neigh = lab.run_in("gateway", ["ip", "neigh", "show", "dev", "to-control"]).stdout
        assert "PERMANENT" in neigh
        counters = lab.run_in("gateway", ["nft", "list", "table", "netdev", "diode"]).stdout
        assert int(counters.split("packets")[1].split()[0]) > 0  # the probes died at the gateway's ingress
        stats, seqs, status, _ = _run(lab, 30, set(), expect=30)
    assert seqs == list(range(1, 31))
    assert stats["records"] == 30 and stats["lost"] == 0 and stats["gaps"] == [] and stats["heartbeats"] >= 1
    assert status["records"] == 30 and status["lost"] == 0


@needs_lab
@pytest.mark.netns
def test_induced_loss_is_reported_as_gaps(tmp_path: Path) -> None:
    drop = {5, 6, 7, 20, 40}  # 40 is the last record: only the heartbeat reveals it
    with Lab("data-diode") as lab, zone_broker(lab, "control", tmp_path):
        stats, seqs, status, dropped = _run(lab, 40, drop, expect=35)
    assert dropped == 5
    assert seqs == [i for i in range(1, 41) if i not in drop]
    assert stats["lost"] == 5 and stats["gaps"] == [[5, 7], [20, 20], [40, 40]]
    assert status["lost"] == 5 and status["gaps"] == [[5, 7], [20, 20], [40, 40]]  # published, not just logged


@needs_lab
@pytest.mark.netns
def test_repetition_and_parity_repair_the_loss(tmp_path: Path) -> None:
    with Lab("data-diode") as lab, zone_broker(lab, "control", tmp_path):
        rep, rep_seqs, _, rep_dropped = _run(lab, 30, {5, 6, 7, 20}, expect=30, copies=2, copy0_only=True)
        fec, fec_seqs, _, fec_dropped = _run(lab, 32, {6, 20}, expect=32, parity=4)
    assert rep_dropped == 4 and rep_seqs == list(range(1, 31))
    assert rep["lost"] == 0 and rep["records"] == 30 and rep["duplicates"] == 26
    assert fec_dropped == 2 and sorted(fec_seqs) == list(range(1, 33))
    assert fec["recovered"] == 2 and fec["lost"] == 0


def test_receiver_counts_bad_datagrams_and_detects_restart() -> None:
    got: list[int] = []
    rx = DiodeReceiver(lambda seq, rec: got.append(seq), gap_grace_s=0)
    body = json.dumps(Record(topic="t", payload=b"x").to_wire()).encode()
    rx.datagram_received(b"junk", ("a", 1))
    bad_crc = bytearray(pack(DATA, 0, 1, 1, body))
    bad_crc[-1] ^= 0xFF
    rx.datagram_received(bytes(bad_crc), ("a", 1))
    assert rx.stats.bad == 2 and got == []
    rx.datagram_received(pack(DATA, 0, 1, 1, body), ("a", 1))
    rx.datagram_received(pack(DATA, 0, 1, 3, body), ("a", 1))
    rx.datagram_received(pack(DATA, 0, 2, 1, body), ("a", 1))  # new session: sender restarted
    assert got == [1, 3, 1] and rx.stats.sender_restarts == 1
    assert rx.stats.gaps == [(2, 2)] and rx.stats.lost == 1
    assert unpack(pack(DATA, 1, 9, 7, b"{}"))[:4] == (DATA, 1, 9, 7) and HEADER.size == 36
