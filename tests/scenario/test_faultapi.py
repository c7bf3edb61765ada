"""The live fault API: token, loopback only, inject/list/clear through the client and the CLI."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from devices.faultapi.client import FaultApiError, FaultClient
from devices.faultapi.server import FaultApiServer, is_loopback
from devices.lab import Lab, clean
from tests.scenario.conftest import IA  # noqa: E402,F401 - the fixture `lab` comes from there
from tests.scenario.helpers import ROOT


async def http(port: int, request: bytes) -> tuple[int, dict]:
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    w.write(request)
    await w.drain()
    raw = await asyncio.wait_for(r.read(), 5)
    w.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def gridgate(*args: str) -> tuple[int, str, str]:
    p = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", *args, cwd=ROOT,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 60)
    return p.returncode, out.decode(), err.decode()


async def test_requests_without_the_token_are_refused(lab: Lab) -> None:
    port = lab.api.port
    body = b'{"target": {"device": "meter1"}, "fault": {"kind": "silent"}}'
    for auth in (b"", b"Authorization: Bearer wrong\r\n", b"Authorization: " + lab.api.token.encode() + b"\r\n"):
        status, reply = await http(port, b"POST /faults HTTP/1.1\r\nHost: x\r\n" + auth +
                                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert status == 401 and "token" in reply["error"]
    assert lab.api.refused["unauthorised"] == 3
    assert lab.injector.list() == [] and lab.emu.devices["meter1"].server.faults.healthy
    status, reply = await http(port, b"GET /faults HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + lab.api.token.encode() + b"\r\n\r\n")
    assert (status, reply) == (200, {"active": []})
    state = json.loads(lab.api.state_file.read_text())
    assert state["url"] == lab.api.url and (lab.api.state_file.stat().st_mode & 0o777) == 0o600


async def test_non_loopback_is_refused(lab: Lab) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.5")
    assert not is_loopback("192.0.2.10") and not is_loopback("0.0.0.0") and not is_loopback("fe80::1%eth0")
    with pytest.raises(ValueError, match="not a loopback address"):
        FaultApiServer(lab.injector, host="0.0.0.0")
    # a request arriving from another host is answered 403 even with the right token
    refusal = lab.api.peer_refusal("192.0.2.10")
    assert refusal is not None and refusal.status == 403 and b"not loopback" in refusal.body
    assert lab.api.refused["non_loopback"] == 1 and lab.api.peer_refusal("127.0.0.1") is None


async def test_client_inject_list_clear_with_auto_clear(lab: Lab) -> None:
    c = FaultClient(state_file=lab.api.state_file)
    t0 = time.time()
    a = await asyncio.to_thread(c.inject, {"device": "meter1"}, {"kind": "delay", "ms": 800}, "1500ms", "slow")
    assert a["id"] == "slow" and a["until"] == pytest.approx(a["since"] + 1.5)
    lost = await lab.wait_for(IA, quality="INVALID", timeout=3, since=t0)
    assert lost.quality.get("failure")
    assert [f["id"] for f in await asyncio.to_thread(c.list)] == ["slow"]
    await lab.wait_for(IA, quality="GOOD", timeout=6, since=t0 + 1.5, match=clean)  # auto-cleared after 1.5 s
    assert await asyncio.to_thread(c.list) == []
    with pytest.raises(FaultApiError, match="400 .*'melt'"):
        await asyncio.to_thread(c.inject, {"device": "meter1"}, {"kind": "melt"})
    with pytest.raises(FaultApiError, match="400 no point 'Nope'"):
        await asyncio.to_thread(c.inject, {"point": "meter1/Nope"}, {"kind": "stuck"})
    with pytest.raises(FaultApiError, match="404 no active fault 'ghost'"):
        await asyncio.to_thread(c.clear, "ghost")


async def test_cli_fault_commands(lab: Lab, tmp_path: Path) -> None:
    st = str(lab.api.state_file)
    t0 = time.time()
    rc, out, err = await gridgate("fault", "inject", "--state", st, "--point", IA, "--kind", "stuck", "--param", "value=42",
                                  "--id", "s1")
    assert rc == 0, err
    assert json.loads(out)["points"] == [IA]
    await lab.wait_for(IA, value=42, timeout=3, since=t0)
    rc, out, _ = await gridgate("fault", "list", "--state", st)
    assert rc == 0 and [f["id"] for f in json.loads(out)] == ["s1"]
    t1 = time.time()
    rc, out, _ = await gridgate("fault", "clear", "--state", st, "s1")
    assert rc == 0 and json.loads(out)["id"] == "s1"
    await lab.wait_for(IA, value=182.4, tolerance=1e-3, timeout=3, since=t1)
    assert lab.injector.list() == []
    rc, out, err = await gridgate("fault", "list", "--url", lab.api.url, "--token", "nope")
    assert rc == 1 and "401" in err and "token" in err and "Traceback" not in err
