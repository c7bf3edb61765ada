"""Exported SCL through an independent engineering tool: libiec61850's own SCL compiler (genconfig.jar).

Each example IED's CID is compiled by genconfig into a libiec61850 ``.cfg``; that model has the same
LDs, LNs, DOs, DAs (names, FCs, types, trigger options) as the one gridgate generates, the emulator
serves it, and the gateway associates, finds every point in its data set, gets GI and a report with
the value the IED wrote (in the units the compiled model states). gridgate ships no genconfig: set
GRIDGATE_GENCONFIG to a genconfig.jar built from libiec61850's tools/model_generator, with Java on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from devices.iec61850.genconfig import ENV, to_cfg
from devices.iec61850.model import build, plan
from devices.iec61850.scl import export_device, to_bytes
from devices.iec61850.server import Iec61850Ied, _load_model_file
from devices.iec61850.walk import Node, logical_nodes, tree
from gateway.protocols.iec61850.config import Iec61850Device
from gateway.protocols.iec61850.libiec import lib
from gateway.southbound.iec61850 import MmsSource
from tests.iec61850.conftest import fast_backoff, running
from tests.iec61850.support import ROOT
from tests.iec61850.test_conformance import site
from tests.support.mosquitto import free_port

JAR = os.environ.get(ENV, "")
pytestmark = pytest.mark.skipif(
    not (JAR and os.path.isfile(JAR) and shutil.which("java")),
    reason=f"libiec61850's genconfig is not available: set {ENV} to a genconfig.jar (built from libiec61850's "
           "tools/model_generator) and put Java on PATH",
)


def _ieds() -> list[Iec61850Device]:
    return [d for d in site().devices if d.protocol == "iec61850"]


def _shape(model: int) -> dict[str, tuple]:
    """reference → (FC, type, trigger options) of every DA; DOs as their child names."""
    out: dict[str, tuple] = {}

    def visit(prefix: str, n: Node) -> None:
        ref = f"{prefix}.{n.name}"
        out[ref] = (n.fc, n.da_type, n.trg) if n.fc else tuple(c.name for c in n.children)
        for c in n.children:
            visit(ref, c)

    from devices.iec61850.walk import children

    for ld, ln, ln_ptr in logical_nodes(model):
        for do in children(ln_ptr):
            visit(f"{ld}/{ln}", tree(do))
    return out


@pytest.mark.parametrize("idx", range(6))
async def test_genconfig_compiles_the_exported_cid_and_the_cfg_is_served(idx: int, tmp_path):
    dev = _ieds()[idx]
    cid, cfg = tmp_path / "ied.cid", tmp_path / "ied.cfg"
    cid.write_bytes(to_bytes(export_device(dev)))
    to_cfg(str(cid), str(cfg), dev.iec61850.ied_name, JAR)

    L = lib()
    generated, compiled = build(plan(dev)), _load_model_file(str(cfg))
    try:
        a, b = _shape(generated), _shape(compiled)
        assert len(a) > 150 and a == b  # the same model, attribute for attribute
    finally:
        L.IedModel_destroy(generated)
        L.IedModel_destroy(compiled)

    served = dev.model_copy(update={"port": free_port(), "iec61850": dev.iec61850.model_copy(update={"scl": str(cfg)})})
    ied = Iec61850Ied(served)
    ied.start()
    try:
        src = MmsSource(served, fast_backoff())
        async with running(src) as sink:
            names = [p.name for p in served.points]
            await sink.wait(lambda: src.connected and all(sink.of(n) for n in names), timeout=20, what="GI of every point")
            assert not src._polled and len(src._rcbs) == 1  # every point found in the compiled data set
            p = next(p for p in served.points if p.reference.endswith("TotW.mag.f"))
            ts = round(time.time() - 7, 6)
            ied.update(p.name, 4321.0, 0, ts)
            r = await sink.wait(lambda: [x for x in sink.of(p.name) if x.timestamp == ts], what="report of TotW")
            assert r[-1].value == pytest.approx(4321.0, rel=1e-6) and r[-1].event and r[-1].quality == 0
    finally:
        ied.stop()


def test_scl_cfg_command(tmp_path):
    cid = tmp_path / "f1.cid"
    cid.write_bytes(to_bytes(export_device(_ieds()[0])))
    env = dict(os.environ, PYTHONPATH=ROOT)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "devices.iec61850.scl_cli", "scl", "cfg", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, env=env)

    r = run(str(cid), "-o", str(tmp_path / "f1.cfg"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "f1.cfg").read_text()
    assert text.startswith("MODEL(KGM_F1){") and "RC(brcb101 KGM_F1PROT/LLN0.brcb101 1 ds1" in text
    bad = tmp_path / "bad.cid"
    bad.write_text("<SCL xmlns='http://www.iec.ch/61850/2003/SCL'><IED name='X'/></SCL>")
    r = run(str(bad), "-o", str(tmp_path / "bad.cfg"), "--ied", "NOPE")
    assert r.returncode == 1 and "genconfig refused" in r.stderr
