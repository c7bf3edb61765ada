"""Modbus devices each on their own 127.x address and one port share ONE listening socket (0.0.0.0:port bound
to "lo", devices/sharedlisten.py); every connection reaches the device of the address it was made to, over
real sockets: registers, refused addresses, per-device caps and faults, the open-file budget, port conflicts,
and the gateway polling such a site into a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from devices.emulator import Emulator
from devices.modbus.model import ArrayDataModel
from devices.modbus.server import ModbusServer
from devices.scenario.inject import Injector
from devices.sharedlisten import SharedListeners, SharedPortError, shared_ports
from gateway.app import Gateway, GatewayOptions
from gateway.config import Config
from gateway.runtime import free_port
from tests.support.mqtt import Collector

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def site(port: int, hosts: list[str] = HOSTS, **device: object) -> dict:
    """One meter per host, all on ``port``; meter i holds (i + 1) * 100.5 (register 1005, 2010, 3015)."""
    devices = [{"name": f"m{i}", "kind": "meter", "protocol": "modbus", "host": h, "port": port, "poll_interval": "200ms",
                "timeout": "500ms", **device, "points": [
                    {"name": "P", "table": "holding", "address": 0, "type": "uint16", "scale": 0.1,
                     "measurement": {"equipment": f"SUB/B/L{i}", "type": "ActivePower"},
                     "signal": {"kind": "constant", "value": (i + 1) * 100.5}}]}
               for i, h in enumerate(hosts)]
    return {"site": {"name": "SHARED"}, "gateway": {"id": "gw-shared", "northbound": {"integrity_interval": "30s"}},
            "substations": [{"name": "SUB", "bays": [{"name": "B", "equipment": [
                {"name": f"L{i}", "type": "EnergyConsumer"} for i in range(len(hosts))]}]}],
            "devices": devices}


async def read_hr(host: str, port: int, count: int = 1, unit: int = 1) -> list[int]:
    """One FC3 read of holding registers from address 0 over a fresh connection."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(struct.pack(">HHHBBHH", 7, 0, 6, unit, 3, 0, count))
        head = await asyncio.wait_for(reader.readexactly(9), 5)
        body = await asyncio.wait_for(reader.readexactly(head[8]), 5)
        assert struct.unpack(">HHHBB", head[:8]) == (7, 0, 3 + 2 * count, unit, 3)
        return list(struct.unpack(f">{count}H", body))
    finally:
        writer.close()


async def closed_at_once(host: str, port: int) -> bool:
    """True if a connection to host:port is accepted by the kernel and then reset or closed unanswered."""
    try:  # the reset may come before the connect is seen complete
        reader, writer = await asyncio.open_connection(host, port)
    except ConnectionResetError:
        return True
    try:
        writer.write(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 0, 1))
        data = await asyncio.wait_for(reader.read(100), 5)
        return data == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


def listening_sockets(port: int) -> list[socket.socket]:
    """This process's listening TCP sockets on ``port`` (dup'd; the caller closes them)."""
    out = []
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if s.type == socket.SOCK_STREAM and s.getsockname()[1] == port and s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                out.append(s)
                continue
        except (OSError, TypeError, IndexError):
            pass
        s.close()
    return out


async def test_devices_on_their_own_addresses_share_one_socket_and_answer_with_their_own_registers() -> None:
    port = free_port()
    cfg = Config.model_validate(site(port))
    async with Emulator(cfg) as emu:
        assert emu.listeners.ports == {port: ["m0", "m1", "m2"]}
        socks = listening_sockets(port)
        try:
            assert len(socks) == 1  # not one per device
            s = socks[0]
            assert s.getsockname() == ("0.0.0.0", port)
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).rstrip(b"\0") == b"lo"  # loopback only
        finally:
            for x in socks:
                x.close()
        assert [await read_hr(h, port) for h in HOSTS] == [[1005], [2010], [3015]]
        for name in ("m0", "m1", "m2"):  # each device counted its own connection and request
            st = emu.devices[name].server.stats
            assert (st.connections_total, st.requests, st.responses) == (1, 1, 1), (name, st)
        # an address no device has: reset at once, counted by the shared socket, not by a device
        assert await closed_at_once("127.0.0.9", port)
        assert emu.listeners.refused == 1
        assert sum(emu.devices[n].server.stats.connections_total for n in ("m0", "m1", "m2")) == 3
    assert listening_sockets(port) == []  # the last device stopped closed it


async def test_a_fault_on_one_device_leaves_its_neighbours_serving() -> None:
    port = free_port()
    async with Emulator(Config.model_validate(site(port))) as emu:
        inj = Injector(emu)
        a = await inj.inject({"device": "m1"}, {"kind": "disconnect"})
        assert await closed_at_once("127.0.0.3", port)
        assert [await read_hr("127.0.0.2", port), await read_hr("127.0.0.4", port)] == [[1005], [3015]]
        assert emu.devices["m1"].server.stats.connections_rejected == 1 and emu.devices["m0"].server.stats.connections_rejected == 0
        await inj.clear(a.id)
        assert await read_hr("127.0.0.3", port) == [2010]
        # the device stopped and started again (what a DNP3/IEC fault does): only its own address goes away
        await emu.stop_device("m2")
        assert await closed_at_once("127.0.0.4", port)
        assert await read_hr("127.0.0.2", port) == [1005]
        await emu.start_device("m2")
        assert await read_hr("127.0.0.4", port) == [3015]


async def test_each_device_keeps_its_own_connection_cap() -> None:
    port = free_port()
    cfg = Config.model_validate(site(port, connections={"max_connections": 1, "evict_idle_after": "60s"}))
    async with Emulator(cfg) as emu:
        r0, w0 = await asyncio.open_connection("127.0.0.2", port)
        try:
            w0.write(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 0, 1))
            await asyncio.wait_for(r0.readexactly(11), 5)  # m0's one connection, active
            assert await closed_at_once("127.0.0.2", port)  # a second one to m0: over its cap
            assert await read_hr("127.0.0.3", port) == [2010]  # m1's cap is its own
        finally:
            w0.close()
        assert emu.devices["m0"].server.stats.connections_rejected == 1 and emu.devices["m1"].server.stats.connections_rejected == 0


@pytest.mark.parametrize("io", ["readers", "transports"])
async def test_both_io_paths_take_connections_from_the_shared_socket(io) -> None:
    port = free_port()
    shared = SharedListeners({port: ["a", "b"]})
    servers = []
    for i, host in enumerate(("127.0.0.5", "127.0.0.6")):
        model = ArrayDataModel(holding=8)
        model.set_register("holding", 0, 40 + i)
        servers.append(ModbusServer(model, host=host, port=port, name="ab"[i], io=io, listeners=shared))
    for s in servers:
        await s.start()
    try:
        assert [s.port for s in servers] == [port, port]
        assert [await read_hr("127.0.0.5", port), await read_hr("127.0.0.6", port)] == [[40], [41]]
        assert await closed_at_once("127.0.0.1", port) and shared.refused == 1
    finally:
        for s in servers:
            await s.stop()


def test_uvloop_serves_the_shared_socket_too() -> None:
    uvloop = pytest.importorskip("uvloop")
    port = free_port()

    async def main() -> list[list[int]]:
        async with Emulator(Config.model_validate(site(port))) as emu:
            assert emu.listeners.ports == {port: ["m0", "m1", "m2"]}
            return [await read_hr(h, port) for h in HOSTS]

    assert uvloop.run(main()) == [[1005], [2010], [3015]]


async def test_a_subset_of_the_site_keeps_a_socket_per_device() -> None:
    """``--device``/shards: another process may serve the rest of the port, so nothing takes 0.0.0.0:port."""
    port = free_port()
    async with Emulator(Config.model_validate(site(port)), only={"m0", "m2"}) as emu:
        assert emu.listeners.ports == {}
        socks = listening_sockets(port)
        try:
            assert sorted(s.getsockname() for s in socks) == [("127.0.0.2", port), ("127.0.0.4", port)]
        finally:
            for x in socks:
                x.close()
        assert [await read_hr("127.0.0.2", port), await read_hr("127.0.0.4", port)] == [[1005], [3015]]


def test_which_ports_are_shared() -> None:
    rows = [("a", "127.0.0.2", 502, True), ("b", "127.0.1.7", 502, True),  # shared
            ("c", "127.0.0.2", 503, True),  # alone on its port
            ("d", "127.0.0.2", 102, True), ("e", "127.0.0.3", 102, False),  # an IED (own C socket) on the port
            ("f", "127.0.0.2", 20000, True), ("g", "0.0.0.0", 20000, True),  # one on every address
            ("h", "127.0.0.2", 2404, True), ("i", "localhost", 2404, True), ("j", "::1", 2405, True),
            ("k", "127.0.0.3", 2405, True), ("l", "127.0.0.4", 2405, True)]
    assert shared_ports(rows) == {502: ["a", "b"]}
    with pytest.raises(ValueError, match="already used by device 'm0'"):
        Config.model_validate(site(1502, ["127.0.0.2", "127.0.0.2"]))  # same host AND port: still refused


async def test_a_port_taken_on_one_loopback_address_names_the_port_devices_and_fix() -> None:
    port = free_port()
    with socket.socket() as other:  # "another program" on 127.0.0.5:port
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.5", port))
        other.listen()
        emu = Emulator(Config.model_validate(site(port)))
        with pytest.raises(SharedPortError) as e:
            await emu.start()
        await emu.stop()
    msg = str(e.value)
    assert f"port {port}: cannot open the listening socket that 3 devices on 127.x addresses share (m0, m1, m2)" in msg
    assert "Address already in use" in msg and f"ss -ltnp 'sport = :{port}'" in msg and "another port" in msg


def test_emulate_with_the_shared_port_taken_exits_with_the_message_not_a_traceback(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site(port), sort_keys=False))
    with socket.socket() as other:
        other.bind(("127.0.0.5", port))
        other.listen()
        r = subprocess.run([sys.executable, "-m", "gateway.cli", "emulate", "--config", str(path), "--no-fault-api",
                            "--duration", "1"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"port {port}: cannot open the listening socket that 3 devices" in r.stderr
    assert "Traceback" not in r.stderr, r.stderr[-2000:]


BUDGET = textwrap.dedent("""
    import asyncio, json, resource, sys
    from devices.emulator import Emulator
    from gateway.config import Config
    from gateway.site.openfiles import OpenFilesError
    resource.setrlimit(resource.RLIMIT_NOFILE, (250, 250))  # a hard limit below 2 sockets per device
    said = []

    async def main():
        emu = Emulator(Config.model_validate(json.loads(sys.argv[1])), skip=said.append)
        try:
            await emu.start()
        except OpenFilesError as e:
            return f"error: {e}"
        try:
            return f"ok: {len(emu.devices)} devices, limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}, said {said}"
        finally:
            await emu.stop()

    print(asyncio.run(main()))
""")


@pytest.mark.parametrize("layout", ["addresses", "ports"])
def test_the_open_file_budget_counts_one_socket_per_shared_port(layout: str) -> None:
    """200 devices under a hard limit of 250: on their own addresses they start (1 listening socket + the process's
    64, with room for 185 masters); on ports of their own (200 listening sockets + 64) they cannot."""
    port = free_port()
    hosts = [f"127.0.1.{i + 1}" for i in range(200)]
    data = site(port, hosts)
    if layout == "ports":
        for d, p in zip(data["devices"], range(port, port + 200)):
            d["host"], d["port"] = "127.0.0.1", p
    r = subprocess.run([sys.executable, "-c", BUDGET, json.dumps(data)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    if layout == "addresses":
        assert r.stdout.startswith("ok: 200 devices, limit 250, said ['emulator: open-file limit 250 (hard limit): room "
                                   "for about 185 master connections to 200 devices"), r.stdout
    else:
        assert r.stdout.startswith("error: emulating 200 devices (a listening socket each, one more per connected "
                                   "master) needs at least 264 open files, 464 at full strength"), r.stdout
        assert "give devices on one port their own 127.x addresses" in r.stdout


async def test_gateway_polls_a_site_of_shared_addresses_into_mosquitto(mosquitto) -> None:
    port = free_port()
    cfg = Config.model_validate(site(port))
    prefix = f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/meas/#"
    async with Emulator(cfg) as emu, Collector(mosquitto.port, [prefix]) as sub:
        async with Gateway(cfg, GatewayOptions(broker=mosquitto.url, status_interval=1.0)):
            for i in range(3):
                msg = await sub.wait_for(lambda i=i: sub.latest(f"SUB/B/L{i}/ActivePower"), 15, f"m{i}'s value")
                assert msg["value"] == pytest.approx((i + 1) * 100.5) and msg["quality"]["validity"] == "GOOD"
                assert msg["provenance"]["protocol"] == "modbus"
            assert len(listening_sockets(port)) == 1
            assert all(emu.devices[f"m{i}"].server.stats.requests >= 1 for i in range(3))


NO_OPTION = textwrap.dedent("""
    import asyncio, json, logging, socket, sys
    del socket.SO_BINDTODEVICE  # a system without it (not Linux)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from devices.emulator import Emulator
    from gateway.config import Config
    from tests.modbus.test_shared_listeners import listening_sockets, read_hr

    async def main():
        cfg = Config.model_validate(json.loads(sys.argv[1]))
        async with Emulator(cfg) as emu:
            port = cfg.devices[0].port
            socks = listening_sockets(port)
            names = sorted(s.getsockname()[0] for s in socks)
            for s in socks:
                s.close()
            print(emu.listeners.ports, names, [await read_hr(d.host, port) for d in cfg.devices])

    asyncio.run(main())
""")


def test_without_so_bindtodevice_each_device_gets_its_own_socket_and_a_log_line_says_why() -> None:
    r = subprocess.run([sys.executable, "-c", NO_OPTION, json.dumps(site(free_port()))], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "{} ['127.0.0.2', '127.0.0.3', '127.0.0.4'] [[1005], [2010], [3015]]", r.stdout
    assert ("devices on 127.x addresses sharing a port get a listening socket each: this system has no "
            "SO_BINDTODEVICE (Linux only)") in r.stderr, r.stderr
