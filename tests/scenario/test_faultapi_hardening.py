"""Hostile requests to the fault API: each gets a 4xx (never silence or a traceback), the token
check is strict but the scheme case-insensitive, durations are sane, the state file is private."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from devices.faultapi.server import FaultApiServer
from devices.faultapi.state import StateFileError, default_state_file, write_state
from devices.lab import Lab
from tests.scenario.conftest import IA  # noqa: E402,F401 - the fixture `lab` comes from there


async def raw(port: int, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes; the status code of the reply (0 if the server closed without one) and its body."""
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        w.write(request)
        await w.drain()
    except ConnectionError:
        pass
    try:
        data = await asyncio.wait_for(r.read(), 10)
    except ConnectionError:
        data = b""
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return (int(head.split()[1]) if head.startswith(b"HTTP/") else 0), body


def auth(lab: Lab, scheme: str = "Bearer") -> bytes:
    return f"Authorization: {scheme} {lab.api.token}\r\n".encode()


async def test_malformed_requests_all_get_a_4xx(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    port, a = lab.api.port, auth(lab)
    cases = {
        "huge header block": b"GET /faults HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000 + b"\r\n" + a + b"\r\n",
        "many headers": b"GET /faults HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(20_000)) + a + b"\r\n",
        "non-numeric length": b"POST /faults HTTP/1.1\r\nHost: x\r\n" + a + b"Content-Length: abc\r\n\r\n{}",
        "negative length": b"POST /faults HTTP/1.1\r\nHost: x\r\n" + a + b"Content-Length: -5\r\n\r\n{}",
        "body over limit": b"POST /faults HTTP/1.1\r\nHost: x\r\n" + a + b"Content-Length: 100000\r\n\r\n" + b"{" * 100_000,
        "garbage request line": b"\x00\x01\x02 nonsense\r\n\r\n",
        "bad JSON": b"POST /faults HTTP/1.1\r\nHost: x\r\n" + a + b"Content-Length: 5\r\n\r\n{nope",
        "JSON not an object": b"POST /faults HTTP/1.1\r\nHost: x\r\n" + a + b"Content-Length: 2\r\n\r\n[]",
        "unknown path": b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n" + a + b"\r\n",
        "wrong method": b"PUT /faults HTTP/1.1\r\nHost: x\r\n" + a + b"Content-Length: 0\r\n\r\n",
    }
    for name, req in cases.items():
        status, body = await raw(port, req)
        assert 400 <= status < 500, (name, status, body[:200])
    assert "Traceback" not in caplog.text
    assert lab.injector.list() == []
    status, body = await raw(port, b"GET /faults HTTP/1.1\r\nHost: x\r\n" + a + b"\r\n")  # still serving
    assert status == 200 and json.loads(body) == {"active": []}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_bearer_scheme_is_case_insensitive(lab: Lab, scheme: str) -> None:
    status, body = await raw(lab.api.port, b"GET /faults HTTP/1.1\r\nHost: x\r\n" + auth(lab, scheme) + b"\r\n")
    assert status == 200 and json.loads(body) == {"active": []}


async def test_wrong_tokens_are_refused(lab: Lab) -> None:
    for h in (b"Authorization: Basic " + lab.api.token.encode(), b"Authorization: Bearer", b"Authorization: Bearer x" + lab.api.token.encode()):
        status, body = await raw(lab.api.port, b"GET /faults HTTP/1.1\r\nHost: x\r\n" + h + b"\r\n\r\n")
        assert status == 401 and b"token" in body
    assert lab.api.refused["unauthorised"] == 3


@pytest.mark.parametrize("duration", ["-5s", -1, "1e999", 1e999, 0, "nan"])
async def test_negative_zero_or_infinite_durations_are_400(lab: Lab, duration: object) -> None:
    doc = {"target": {"device": "meter1"}, "fault": {"kind": "silent"}, "duration": duration}
    body = json.dumps(doc).replace("Infinity", "1e999").encode()
    status, reply = await raw(lab.api.port, b"POST /faults HTTP/1.1\r\nHost: x\r\n" + auth(lab) +
                              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 400 and b"duration" in reply, reply
    assert lab.injector.list() == [] and lab.emu.devices["meter1"].server.faults.healthy


async def test_state_file_is_private_exclusive_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    from devices.scenario.inject import Injector

    srv = FaultApiServer(Injector.__new__(Injector))
    await srv.start()
    try:
        p = srv.state_file
        assert p == run / "gridgate" / "faultapi" / "emulator.json" and p.parent.parent == default_state_file().parent
        for d in (p.parent, p.parent.parent):
            assert stat.S_IMODE(os.lstat(d).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(p).st_mode) == 0o600
        assert json.loads(p.read_text())["token"] == srv.token
    finally:
        await srv.stop()
    assert not p.exists()


def test_a_planted_symlink_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "state.json"
    link.symlink_to(victim)
    with pytest.raises(StateFileError, match="already exists"):
        write_state(link, {"token": "t", "pid": os.getpid()})
    assert victim.read_text() == "precious"


def test_a_runtime_dir_that_is_a_symlink_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (run / "gridgate").symlink_to(elsewhere)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    with pytest.raises(StateFileError, match="0700"):
        default_state_file(create=True)


def test_a_stale_state_file_of_a_dead_emulator_is_replaced(tmp_path: Path) -> None:
    p = tmp_path / "state.json"
    p.write_text(json.dumps({"token": "old", "pid": 2**22 + 12345}))
    write_state(p, {"token": "new", "pid": os.getpid()})
    assert json.loads(p.read_text())["token"] == "new" and stat.S_IMODE(p.stat().st_mode) == 0o600


async def test_a_second_emulator_does_not_clobber_the_first_ones_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    theirs = run / "gridgate" / "faultapi" / "site.json"
    theirs.parent.mkdir(mode=0o700, parents=True)
    os.chmod(theirs.parent.parent, 0o700)
    theirs.write_text(json.dumps({"token": "theirs", "pid": 1, "url": "http://127.0.0.1:1"}))  # pid 1 is alive
    from devices.scenario.inject import Injector

    srv = FaultApiServer(Injector.__new__(Injector), config="elsewhere/site.yaml")
    await srv.start()
    try:
        assert srv.state_file == theirs.with_name("site-2.json") and srv.name == "site-2"
        assert json.loads(theirs.read_text())["token"] == "theirs"
        with pytest.raises(StateFileError, match="named 'site'.*different --name"):  # an explicit name is not renamed
            await FaultApiServer(Injector.__new__(Injector), name="site").start()
    finally:
        await srv.stop()
    assert json.loads(theirs.read_text())["token"] == "theirs" and not srv.state_file.exists()


def test_an_old_world_readable_directory_of_ours_is_made_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "gridgate").mkdir()
    os.chmod(run / "gridgate", 0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    p = default_state_file(create=True)
    assert stat.S_IMODE(os.lstat(p.parent).st_mode) == 0o700
