"""``gridgate emulate`` on uvloop (the default ``--loop auto`` where uvloop is installed, or asked
for): the emulated Modbus servers on libuv answer as on asyncio (values, exception replies, one
signal to stop), sharded too; ``auto`` falls back to asyncio without uvloop, and an explicit
``--loop uvloop`` without it is a usage error."""

from __future__ import annotations

import asyncio
import signal
import struct
import sys

import pytest

from tests.modbus.mbs_raw import Raw, req
from tests.product.test_emulate_processes import DEVICES, ROOT, site

uvloop = pytest.importorskip("uvloop")  # a dependency on Linux: present wherever gridgate is installed


async def _reply(port: int, pdu: bytes) -> bytes | None:
    try:
        c = await Raw.open(port)
    except OSError:
        return None
    try:
        return await c.call(pdu)
    finally:
        c.writer.close()


@pytest.mark.parametrize("processes, loop", [("1", []), ("2", ["--loop", "uvloop"])], ids=["default-1", "asked-2"])
async def test_emulated_devices_answer_on_uvloop(tmp_path, processes, loop):
    path, ports = site(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "emulate", "--config", str(path), "--no-fault-api", *loop,
        "--processes", processes, "--duration", "120",
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        values: dict[int, int] = {}
        for _ in range(120):  # up to ~60 s on a loaded machine
            for p in ports:
                if p not in values and (r := await _reply(p, req(3, "HH", 10, 1))) and r[:2] == bytes((3, 2)):
                    values[p] = struct.unpack(">H", r[2:4])[0]
            if len(values) == DEVICES:
                break
            await asyncio.sleep(0.5)
        assert [values.get(p) for p in ports] == [100 * (i + 1) for i in range(DEVICES)]
        # conformance is the server's, not the loop's: an address past the table is exception 02
        assert await _reply(ports[0], req(3, "HH", 60000, 2)) == bytes((0x83, 0x02))
        assert await _reply(ports[0], req(0x41)) == bytes((0xC1, 0x01))  # an unknown function: exception 01
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert err.decode().count("emulate: event loop uvloop") == int(processes)  # every shard runs on it


def test_uvloop_missing_is_a_usage_error_unless_auto() -> None:
    from gateway.runtime import resolve_loop, uvloop_missing

    assert uvloop_missing("asyncio") is None and uvloop_missing("uvloop") is None  # installed here
    assert uvloop_missing("auto") is None and resolve_loop("auto") == "uvloop"
    assert resolve_loop("asyncio") == "asyncio" and resolve_loop("uvloop") == "uvloop"
    sys.modules["uvloop"] = None  # type: ignore[assignment]  # what an install without it looks like to import
    try:
        why = uvloop_missing("uvloop")
        auto = resolve_loop("auto"), uvloop_missing("auto")
    finally:
        sys.modules["uvloop"] = uvloop
    assert why is not None and "--loop uvloop" in why and "gridgate[fast]" in why and "--loop asyncio" in why
    assert auto == ("asyncio", None)  # the default falls back quietly to asyncio's own loop
