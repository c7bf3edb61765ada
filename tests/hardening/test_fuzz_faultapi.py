"""A seeded fuzz campaign on the fault API's port: every request gets an HTTP status (4xx for
anything malformed or unauthorised, never silence), nothing is injected, the server keeps serving."""

from __future__ import annotations

import asyncio
import random

import pytest

from devices.lab import Lab
from tests.support.sites import modbus_site

CASES = 200
SEED = 14


def _request(r: random.Random, token: str) -> bytes:
    method = r.choice([b"GET", b"POST", b"DELETE", b"PUT", b"\x00GET", b"G" * 50])
    path = r.choice([b"/faults", b"/faults/x", b"/", b"/../../etc", b"/faults?" + b"a" * r.randint(0, 9000), r.randbytes(20)])
    headers = [b"Host: x"]
    k = r.random()
    if k < 0.3:
        headers.append(b"Authorization: " + r.choice([b"Bearer ", b"bearer ", b"Basic ", b""]) + r.choice([token.encode(), r.randbytes(10)]))
    if r.random() < 0.4:
        headers.append(b"Content-Length: " + r.choice([b"-1", b"abc", b"99999999999999999999", str(r.randint(0, 200)).encode()]))
    if r.random() < 0.2:
        headers.append(b"X-Pad: " + b"p" * r.randint(1000, 80_000))
    if r.random() < 0.1:
        headers.append(b"Transfer-Encoding: chunked")
    body = r.choice([b"", b"{", b'{"target": {"device": "meter1"}, "fault": {"kind": "silent"}, "duration": -1}',
                     b'{"target": {"device": "meter1"}, "fault": {"kind": "silent"}, "duration": 1e999}', r.randbytes(100)])
    return method + b" " + path + b" HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body


async def _status(port: int, req: bytes) -> int:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(req)
        await w.drain()
    except ConnectionError:
        pass
    try:
        async with asyncio.timeout(10):
            head = await r.readuntil(b"\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        head = b""
    w.close()
    return int(head.split()[1]) if head.startswith(b"HTTP/") else 0


@pytest.fixture
async def lab(tmp_path, mosquitto):
    cfg, _ = modbus_site(tmp_path, poll="100ms", timeout="250ms")
    async with asyncio.timeout(120):
        async with Lab(cfg, broker=mosquitto.url, api=True, api_state=tmp_path / "api.json") as lab:
            await lab.wait_for("meter1/Ia", quality="GOOD", timeout=10, since=0)
            yield lab


async def test_fuzz_campaign_on_the_fault_api(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    r = random.Random(SEED)
    statuses: dict[int, int] = {}
    for _ in range(CASES):
        st = await _status(lab.api.port, _request(r, lab.api.token))
        statuses[st] = statuses.get(st, 0) + 1
    with capsys.disabled():
        print(f"\nfuzz fault API: {CASES} cases, statuses {dict(sorted(statuses.items()))}")
    assert all(400 <= s < 500 or s in (200,) for s in statuses), statuses  # never 0 (silence) nor 5xx
    assert lab.injector.list() == [] and lab.emu.devices["meter1"].server.faults.healthy
    assert await _status(lab.api.port, b"GET /faults HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                         lab.api.token.encode() + b"\r\n\r\n") == 200
