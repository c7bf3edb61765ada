"""air-gapped: `gridgate gateway --profile air-gapped` has no northbound network at all; it
writes signed bundles into a transfer directory. `gridgate courier import DIR` on the other
side publishes them to Mosquitto complete and in order; a tampered bundle is rejected with
a clear message and a non-zero exit, and nothing after it is published out of order."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from devices.netlab.run import ENV_KEY, ENV_TRANSFER, Session, run_with_profile
from gateway.cim import build_catalog
from gateway.conduits.courier import read_bundle
from gateway.conduits.signing import keygen, load_verify_key
from gateway.config import load_config
from tests.netlab_product.conftest import (
    PY,
    REPO,
    SITE,
    deadline,
    descendants,
    last_json_line,
    needs_lab,
    probe,
    profile_args,
)
from tests.support.mqtt import Collector

pytestmark = [needs_lab, pytest.mark.netns]


async def _import(directory: Path, broker: str, key: Path, state: Path) -> tuple[int, str, str]:
    p = await asyncio.create_subprocess_exec(
        PY, "-m", "gateway.cli", "courier", "import", str(directory), "--broker", broker, "--key-file", str(key),
        "--state", str(state), "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    out, err = await asyncio.wait_for(p.communicate(), 60)
    return p.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One gateway run in the air-gapped profile; its transfer directory and summary."""
    tmp = tmp_path_factory.mktemp("airgap")
    key, pub = tmp / "courier.key", tmp / "courier.pub"
    keygen(key, pub)  # the gateway signs with key; the importer holds only pub
    seen: dict = {}

    def while_running(s: Session) -> None:
        seen["holder"] = s.lab.holder_pid
        seen["north"] = probe(s.lab, "gateway", ["10.200.2.2:1883"])  # no route north at all
        seen["routes"] = s.lab.run_in("gateway", ["ip", "route"]).stdout

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, deadline(90), redirect_stderr(err):
        mp.setenv(ENV_TRANSFER, str(tmp / "transfer"))
        mp.setenv(ENV_KEY, str(key))
        rc = run_with_profile("gateway", profile_args("gateway", "air-gapped", 6), on_ready=while_running)
    assert rc == 0, err.getvalue()
    return {"dir": tmp / "transfer", "key": pub, "tmp": tmp, "summary": last_json_line(err.getvalue()), **seen}


def test_gateway_writes_signed_bundles_and_nothing_goes_north(bundles: dict) -> None:
    names = sorted(p.name for p in bundles["dir"].glob("*.ggb"))
    assert len(names) >= 2, names
    assert names == [f"kgm-gw1-{i:010d}.ggb" for i in range(1, len(names) + 1)]
    total = sum(read_bundle(bundles["dir"] / n, load_verify_key(bundles["key"]))[0].count for n in names)
    gw = bundles["summary"]["gateway"]
    assert total == gw["sent"] and gw["dropped"] == 0 and gw["queued"] == 0
    assert bundles["north"]["10.200.2.2:1883"] in ("unreachable", "blocked", "timeout")
    assert "default" not in bundles["routes"]
    assert not Path(f"/proc/{bundles['holder']}").exists() and descendants() == []


async def test_courier_import_publishes_complete_and_in_order(bundles: dict, mosquitto, tmp_path: Path) -> None:
    n_meas = len(build_catalog(load_config(SITE)))
    async with Collector(mosquitto.port, ["gridgate/#"]) as c:
        rc, out, err = await _import(bundles["dir"], mosquitto.url, bundles["key"], tmp_path / "state.json")
        assert rc == 0, err
        rep = json.loads(out)
        names = sorted(p.name for p in bundles["dir"].glob("*.ggb"))
        assert rep["imported"] == names and not rep["rejected"] and not rep["missing"]
        sent = bundles["summary"]["gateway"]["sent"]
        assert rep["records"] == sent
        await c.wait_for(lambda: len(c.messages) >= sent, 15, f"{sent} messages")
        meas = [m.json for m in c.on("/meas/")]
        seqs = [m["seq"] for m in meas]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, no duplicates
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # and complete: no hole in the stream
        assert len({m.topic for m in c.on("/meas/")}) == n_meas
        assert all(m["quality"]["validity"] == "GOOD" for m in meas)
        assert len(c.on("/catalog/")) == n_meas
        assert json.loads(c.on("/status")[-1].payload)["state"] == "offline"  # the final status, last
        # importing again publishes nothing twice
        rc2, out2, _ = await _import(bundles["dir"], mosquitto.url, bundles["key"], tmp_path / "state.json")
        assert rc2 == 0 and json.loads(out2)["imported"] == [] and len(json.loads(out2)["already"]) == len(names)


async def test_tampered_bundle_is_rejected(bundles: dict, mosquitto, tmp_path: Path) -> None:
    copy = tmp_path / "stick"
    shutil.copytree(bundles["dir"], copy)
    victim = copy / "kgm-gw1-0000000002.ggb"
    raw = bytearray(victim.read_bytes())
    raw[raw.index(b"\n") + 20] ^= 0x01  # one bit in the body
    victim.write_bytes(bytes(raw))
    first = read_bundle(copy / "kgm-gw1-0000000001.ggb", load_verify_key(bundles["key"]))[0].count
    async with Collector(mosquitto.port, ["gridgate/#"]) as c:
        rc, out, err = await _import(copy, mosquitto.url, bundles["key"], tmp_path / "state.json")
        await asyncio.sleep(0.5)
    assert rc == 1
    assert "REJECTED kgm-gw1-0000000002.ggb: body checksum mismatch" in err and "FAILED" in err
    rep = json.loads(out)
    assert rep["imported"] == ["kgm-gw1-0000000001.ggb"] and rep["records"] == first
    assert len(c.messages) == first  # nothing from the tampered bundle or after it
    # wrong key: every bundle rejected at the first one, nothing published
    other = tmp_path / "other.pub"
    keygen(tmp_path / "other.key", other)
    rc, out, err = await _import(bundles["dir"], mosquitto.url, other, tmp_path / "state2.json")
    assert rc == 1 and "bad signature" in err and json.loads(out)["imported"] == []


def test_courier_import_bad_input_is_explained(tmp_path: Path) -> None:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([PY, "-m", "gateway.cli", "courier", "import", str(tmp_path / "nope")], capture_output=True,
                       text=True, timeout=30, env=env)
    assert r.returncode == 1 and "is not a directory" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([PY, "-m", "gateway.cli", "courier", "import", str(tmp_path), "--key-file", str(tmp_path / "k")],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 1 and "key file not found" in r.stderr and "keygen" in r.stderr
    keygen(tmp_path / "private.pem", tmp_path / "k")
    r = subprocess.run([PY, "-m", "gateway.cli", "courier", "import", str(tmp_path), "--key-file", str(tmp_path / "private.pem")],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 1 and "is a private key" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([PY, "-m", "gateway.cli", "courier", "import", str(tmp_path), "--key-file", str(tmp_path / "k"),
                        "--broker", "mqtt://127.0.0.1:1"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 1 and "cannot reach MQTT broker" in r.stderr and "Traceback" not in r.stderr
