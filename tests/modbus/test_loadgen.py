"""bench/modbus_loadgen.c, the paced C client of bench_emulator_scale.py, against real emulated
Modbus servers: every reply is counted once, and bad replies are named (wrong transaction id,
exception reply, no reply at all). Not a timed test: the schedule fixes how many requests are
asked; a stall of the machine only moves requests from "sent" to "skipped_busy"."""

from __future__ import annotations

import pytest

from bench import modbus_loadgen
from devices.modbus import ArrayDataModel, ModbusServer
from devices.modbus.faults import ModbusFaults


@pytest.fixture(scope="module")
def binary():
    path, why = modbus_loadgen.build()
    if path is None:
        pytest.skip(f"modbus_loadgen: {why}")
    return path


async def test_counts_replies_and_names_bad_ones(binary) -> None:
    healthy = ArrayDataModel(coil=8, discrete_input=8, holding=200, input=8)
    for a in range(20):
        healthy.set_register("holding", a, 1000 + a)
    servers = [
        ModbusServer(healthy),                                                     # 20 registers: good replies
        ModbusServer(healthy, faults=ModbusFaults(wrong_tid=True)),                # transaction id off
        ModbusServer(ArrayDataModel(coil=8, discrete_input=8, holding=10, input=8)),  # 20 > 10: exception 02
        ModbusServer(healthy, faults=ModbusFaults(silent=True)),                   # never answers
    ]
    for s in servers:
        await s.start()
    windows: list[str] = []
    try:
        load = modbus_loadgen.Load(registers=20, interval=0.1, warmup=0, seconds=1, timeout=0.3, connect_timeout=10)
        r = await modbus_loadgen.run(binary, [s.port for s in servers], load, windows.append)
    finally:
        for s in servers:
            await s.stop()
    assert windows == ["start", "end"]
    assert r["connections"] == r["connected"] == 4
    assert r["asked"] == 40  # 4 devices x 10 polls in 1 s
    assert r["sent"] + r["skipped_busy"] + r["skipped_dead"] == r["asked"]
    assert r["skipped_dead"] == 0
    errors = r["errors"]
    assert set(errors) == {"bad_transaction_id", "exception_reply"}
    # the silent device got one request, never answered: it times out, its later polls wait behind it
    assert r["timeouts"] == 1 and r["late_replies"] == 0
    assert r["sent"] == r["replies"] + errors["bad_transaction_id"] + errors["exception_reply"] + 1
    assert 5 <= r["replies"] <= 10 and 5 <= errors["bad_transaction_id"] <= 10 and 5 <= errors["exception_reply"] <= 10
    # what the servers counted matches what the generator sent (a stall only skips polls)
    assert servers[0].stats.responses == r["replies"]
    lat = r["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"] < 300


async def test_refuses_bad_ports_on_stdin(binary) -> None:
    with pytest.raises(RuntimeError, match=r"stdin line 1: want \"\[ADDRESS:\]PORT \[UNIT\]\""):
        await modbus_loadgen.run(binary, [70000], modbus_loadgen.Load(seconds=0.1, warmup=0))
    # never outside 127.0.0.0/8: refused before any connection is made
    for bad in (("192.0.2.1", 502), ("128.0.0.1", 502), ("127.0.0", 502)):
        with pytest.raises(RuntimeError, match=r"stdin line 1: want .*a 127.x address"):
            await modbus_loadgen.run(binary, [bad], modbus_loadgen.Load(seconds=0.1, warmup=0))


async def test_polls_devices_at_their_own_addresses_on_one_port(binary) -> None:
    """(address, port) pairs: two devices on 127.0.0.2 and 127.0.0.3 of one port, each polled at its own address."""
    from devices.sharedlisten import SharedListeners
    from gateway.runtime import free_port

    port = free_port()
    shared = SharedListeners({port: ["a", "b"]})
    models = [ArrayDataModel(holding=20), ArrayDataModel(holding=20)]
    servers = [ModbusServer(m, host=h, port=port, listeners=shared) for m, h in zip(models, ("127.0.0.2", "127.0.0.3"))]
    for s in servers:
        await s.start()
    try:
        load = modbus_loadgen.Load(registers=20, interval=0.1, warmup=0, seconds=1, timeout=0.5, connect_timeout=10)
        r = await modbus_loadgen.run(binary, [("127.0.0.2", port), ("127.0.0.3", port)], load)
    finally:
        for s in servers:
            await s.stop()
    assert r["connections"] == r["connected"] == 2 and r["error_count"] == 0 and r["asked"] == 20
    assert sum(s.stats.responses for s in servers) == r["replies"] and all(s.stats.responses >= 1 for s in servers)
    assert all(s.stats.connections_total == 1 for s in servers) and shared.refused == 0
