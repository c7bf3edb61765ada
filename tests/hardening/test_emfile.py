"""Out of file descriptors on accept: one warning line per interval, no traceback per attempt,
and the device serves again once descriptors are free. The device runs in a child process
whose RLIMIT_NOFILE is lowered, so the test process is never starved."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, logging, os, resource, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from devices.modbus import ModbusServer
from tests.modbus.mbs_raw import make_model
from devices.netguard import GuardLimits

async def main():
    s = ModbusServer(make_model(), limits=GuardLimits(max_connections=500, idle_timeout=0, evict_idle_after=60))
    await s.start()
    used = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(s.port, flush=True)
    await asyncio.sleep(float(sys.argv[1]))
    await s.stop()

asyncio.run(main())
"""


def _read_hr(port: int, addr: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(struct.pack(">HHHBBHH", 7, 0, 6, 1, 3, addr, 1))
        c.settimeout(5)
        return c.recv(64)


def test_emfile_on_accept_is_one_warning_not_a_traceback_per_attempt() -> None:
    p = subprocess.Popen([sys.executable, "-c", CHILD, "8"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held: list[socket.socket] = []
    try:
        port = int(p.stdout.readline())
        for _ in range(40):  # far more than the child's spare descriptors
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(3.0)  # the child retries accept() every second meanwhile
        for c in held:
            c.close()
        time.sleep(1.5)
        reply = _read_hr(port, 3)
        assert reply[7:] == bytes((3, 2)) + struct.pack(">H", 1003)
    finally:
        for c in held:
            c.close()
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "Traceback" not in err, err[:2000]
    lines = [ln for ln in err.splitlines() if "accept() failed" in ln]
    assert 1 <= len(lines) <= 2 and "Too many open files" in lines[0] and "ulimit" in lines[0], err[:2000]
