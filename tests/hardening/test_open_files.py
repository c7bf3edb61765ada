"""The open-file budget (gateway/site/openfiles.py): a site larger than the shell's soft limit starts
(the soft limit is raised towards the hard one), and one larger than the hard limit stops before
opening anything with one line naming both figures and the fixes — never a traceback, never
"change the port" for a port that is free. Each case runs `gridgate` in a child process whose
limits are lowered, so the test process is never starved."""

from __future__ import annotations

import resource
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.bench_gateway import site  # noqa: E402

DEVICES = 100


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def big_site(tmp_path: Path) -> tuple[Path, list[int]]:
    data = site(DEVICES * 20, DEVICES, 1.0)
    ports = _free_ports(DEVICES)
    for d, port in zip(data["devices"], ports):
        d["port"] = port
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, ports


def _gridgate(args: list[str], soft: int, hard: int, timeout: float = 60) -> subprocess.CompletedProcess:
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limits, env={"PATH": "/usr/bin:/bin", "GRIDGATE_CACHE_DIR": "/nonexistent"})


def _read_hr(port: int, addr: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(struct.pack(">HHHBBHH", 7, 0, 6, 1, 3, addr, 1))
        c.settimeout(5)
        return c.recv(64)


def test_emulator_beyond_the_hard_limit_stops_before_listening_with_the_fix(big_site) -> None:
    path, ports = big_site
    r = _gridgate(["emulate", "--config", str(path), "--no-fault-api", "--duration", "1"], soft=128, hard=128)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert f"emulating {DEVICES} devices (a listening socket each, one more per connected master) needs at least 164 " \
           "open files, 264 at full strength; this process may open 128 (hard limit 128)" in r.stderr
    assert "ulimit -n 1024" in r.stderr and "LimitNOFILE=1024" in r.stderr and "--processes N" in r.stderr
    with socket.socket() as s:  # nothing was left listening
        assert s.connect_ex(("127.0.0.1", ports[0])) != 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_emulator_raises_its_soft_limit_and_serves_every_device(big_site, loop: str) -> None:
    path, ports = big_site
    p = subprocess.Popen([sys.executable, "-m", "gateway.cli", "emulate", "--config", str(path), "--no-fault-api",
                          "--loop", loop, "--duration", "20"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 4096)))
    try:
        for line in p.stdout:  # type: ignore[union-attr]
            if line.startswith("emulating "):
                break
        else:
            pytest.fail(f"the emulator did not start: {p.stderr.read()}")  # type: ignore[union-attr]
        assert line.startswith(f"emulating {DEVICES} devices")
        # the soft limit went up to one listener and one master each: every device answers, all at once
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for port in ports]
        try:
            for c in held:
                c.sendall(struct.pack(">HHHBBHH", 9, 0, 6, 1, 3, 0, 1))
            for c in held:
                c.settimeout(5)
                reply = c.recv(64)
                assert reply[:2] == struct.pack(">H", 9) and reply[7:9] == bytes((3, 2)), reply
        finally:
            for c in held:
                c.close()
        soft = int(Path(f"/proc/{p.pid}/limits").read_text().split("Max open files")[1].split()[0])
        assert soft == 2 * DEVICES + 64
    finally:
        p.terminate()
        _, err = p.communicate(timeout=30)
    assert "Traceback" not in err and "open-file limit" not in err


def test_emulator_warns_when_only_the_listeners_fit(big_site) -> None:
    path, ports = big_site
    r = _gridgate(["emulate", "--config", str(path), "--no-fault-api", "--duration", "0.5"], soft=200, hard=200)
    assert r.returncode == 0, r.stderr
    assert f"emulator: open-file limit 200 (hard limit): room for about 36 master connections to {DEVICES} devices" in r.stderr
    assert f"emulating {DEVICES} devices" in r.stdout


def test_gateway_beyond_the_hard_limit_says_so_before_connecting(big_site) -> None:
    path, _ = big_site
    r = _gridgate(["gateway", "--config", str(path), "--broker", "mqtt://127.0.0.1:1", "--duration", "1"], soft=100, hard=100)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert (f"error: a gateway of {DEVICES} devices (a connection each) needs at least 164 open files; this process may "
            "open 100 (hard limit 100). Raise the limit: `ulimit -n 1024`") in r.stderr
    assert "nothing was delivered" not in r.stderr  # it stopped before the northbound


UVLOOP_CHILD = r"""
import asyncio, os, resource, socket, struct, sys, uvloop
from devices.modbus import ModbusServer
from tests.modbus.mbs_raw import make_model

def at_the_limit(spare=0):
    used = len(os.listdir("/proc/self/fd")) - 1  # listdir held one
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + spare, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

async def main(case):
    first = ModbusServer(make_model(), name="m8")  # warms uvloop up (its resolver's first use opens descriptors)
    await first.start()
    if case == "listen":
        at_the_limit()
        try:
            await ModbusServer(make_model(), name="m9").start()
        except OSError as e:
            print(e.errno, e.strerror)
        return
    if case == "dnp3":
        from devices.dnp3.outstation import Dnp3Outstation
        from tests.dnp3.sites import device

        os_ = Dnp3Outstation(device([{"name": "P", "group": "analog", "index": 0}]))
        await os_.start()
        master, hog = socket.socket(), socket.socket()
        master.setblocking(False)
        at_the_limit()
        master.connect_ex(("127.0.0.1", os_.port))
        await asyncio.sleep(0.3)
        hog.close()
        await asyncio.sleep(1.5)  # accept() is retried after 1 s
        try:
            still = master.recv(1, socket.MSG_PEEK) != b""  # b"": closed by the outstation
        except BlockingIOError:
            still = True  # open, nothing to read: the association waits for the master
        print("dnp3", os_.counters["connections"], still)
        await os_.stop()
        return
    # a master connects while the device is out of descriptors: it waits in the kernel's queue and is served once
    # one is free (uvloop's own server accepted and closed it without a word)
    master, hog = socket.socket(), socket.socket()
    master.setblocking(False)
    at_the_limit()
    master.connect_ex(("127.0.0.1", first.port))
    await asyncio.sleep(0.3)  # the device tried to accept: EMFILE
    hog.close()
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(master, struct.pack(">HHHBBHH", 7, 0, 6, 1, 3, 0, 2))
    print("reply", (await asyncio.wait_for(loop.sock_recv(master, 64), 5)).hex())
    await first.stop()

uvloop.run(main(sys.argv[1]))
"""


def _uvloop_child(case: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", UVLOOP_CHILD, case], cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_uvloop_server_out_of_files_names_the_device_and_the_fix() -> None:
    """uvloop's create_server skipped a socket() that failed and returned a server without sockets."""
    r = _uvloop_child("listen")
    assert r.stdout.strip() == ("24 modbus device m9 cannot listen on 127.0.0.1:0 (Too many open files); "
                                "give it a free port and an address of this machine"), r.stdout + r.stderr


def test_uvloop_master_arriving_out_of_files_waits_and_is_served() -> None:
    r = _uvloop_child("accept")
    # transaction 7, 4 bytes of registers: the connection was kept, not closed by libuv's EMFILE trick
    assert r.stdout.strip().startswith("reply 000700000007010304"), r.stdout + r.stderr
    assert "accept() failed: Too many open files (1 time(s)" in r.stderr, r.stderr


def test_uvloop_dnp3_master_arriving_out_of_files_is_kept() -> None:
    r = _uvloop_child("dnp3")
    assert r.stdout.strip() == "dnp3 1 True", r.stdout + r.stderr
    assert "accept() failed: Too many open files" in r.stderr, r.stderr
