"""ModbusSource.operate against the emulated Modbus device (firmware behind it) and a peer that never
answers writes: encoding of every type and order, the read-back, timeouts, and writes racing polls."""

from __future__ import annotations

import asyncio
import contextlib
import struct

import pytest

from devices.emulator import Emulator
from gateway.config import Config
from gateway.pipeline import Backoff
from tests.modbus.helpers import free_port, running

ORDERS = [("big", "big"), ("little", "big"), ("big", "little"), ("little", "little")]


def _setpoints() -> list[dict]:
    """Signal-less holding registers (setpoints the firmware accepts) of every type and order."""
    pts, addr = [], 0
    for t in ["int16", "uint16", "int32", "uint32", "float32"]:
        for wo, bo in ORDERS if t not in ("int16", "uint16") else [("big", "big"), ("big", "little")]:
            name = f"{t}_{wo[0]}{bo[0]}"
            pts.append({"name": name, "table": "holding", "address": addr, "type": t, "word_order": wo, "byte_order": bo,
                        "scale": 0.5, "offset": -10.0,
                        "measurement": {"equipment": f"S1/B1/{name}", "type": "Voltage"},
                        "command": {"enabled": True}})
            addr += 2
    pts.append({"name": "CB", "table": "coil", "address": 0, "type": "bool", "value_map": {0: 1, 1: 2},
                "measurement": {"equipment": "S1/B1/E1", "type": "SwitchPosition"},
                "signal": {"kind": "discrete", "initial": 1}, "command": {"enabled": True}})
    return pts


def _site(port: int, poll: float = 1.0) -> Config:
    return Config.model_validate({
        "site": {"name": "MBW"}, "gateway": {"id": "gw"},
        "substations": [{"name": "S1", "bays": [{"name": "B1", "equipment": [
            {"name": p["measurement"]["equipment"].rsplit("/", 1)[1], "type": "Breaker"}
            for p in _setpoints() if p["name"] != "CB"] + [{"name": "E1", "type": "Breaker"}]}]}],
        "devices": [{"name": "pq1", "kind": "meter", "protocol": "modbus", "port": port, "poll_interval": poll, "timeout": 0.5,
                     "points": _setpoints()}],
    })


# value per type: within the range after raw = (value + 10) / 0.5, exact in the firmware's float32
VALUES = {"int16": -2000.5, "uint16": 30000.0, "int32": -3_000_000.0, "uint32": 4_000_000.5, "float32": 1234.25}


async def test_every_type_and_order_round_trips_through_the_device():
    cfg = _site(free_port(), poll=5.0)  # slow poll: what we see comes from the read-back
    async with Emulator(cfg, tick=0.02) as emu:
        async with running(cfg.devices[0], Backoff(initial=0.05, maximum=0.2)) as (src, got):
            await got.until(lambda: src.connected and len(got.latest) == len(cfg.devices[0].points), what="first poll")
            for p in cfg.devices[0].points:
                if p.table != "holding":
                    continue
                value = VALUES[p.type]
                res = await src.operate(p.name, value)
                assert res.ok and res.status == "accepted" and res.function == (6 if p.width == 1 else 16), res
                key = f"pq1/{p.name}"
                await got.until(lambda: got.latest[key].value == pytest.approx(value), 2.0, f"{key} read back")
                assert emu.fw.value(emu.fw.index("pq1", p.name)) == pytest.approx(value)  # the device decoded our words
                assert got.latest[key].quality == 0
            # the words on the wire, for one 32-bit case, spelled out: raw 8000021 = 0x007A1215, CDAB
            res = await src.operate("uint32_lb", VALUES["uint32"])
            assert res.registers == [0x1215, 0x007A]
            res = await src.operate("float32_bl", VALUES["float32"])  # BADC
            hi, lo = struct.unpack(">HH", struct.pack(">f", (1234.25 + 10) / 0.5))
            assert res.registers == [((hi & 0xFF) << 8) | (hi >> 8), ((lo & 0xFF) << 8) | (lo >> 8)]
            assert src.counters["commands"] == 18 and src.counters["commands_refused"] == 0


async def test_a_breaker_coil_and_the_changed_position_without_waiting_for_a_poll():
    cfg = _site(free_port(), poll=5.0)
    async with Emulator(cfg, tick=0.05) as emu:
        async with running(cfg.devices[0], Backoff(initial=0.05, maximum=0.2)) as (src, got):
            await got.until(lambda: src.connected and "pq1/CB" in got.latest, what="first poll")
            assert got.latest["pq1/CB"].value == 1
            for target in (2, 1, 2):
                res = await src.operate("CB", target)
                assert res.ok and res.function == 5 and res.registers == [target - 1], res
                await got.until(lambda: got.latest["pq1/CB"].value == target, 1.0, f"CB={target}")  # poll is 5 s away
                assert emu.fw.value(emu.fw.index("pq1", "CB")) == target
            res = await src.operate("CB", 2, "sbo")
            assert not res.ok and res.status == "refused" and "no select-before-operate" in res.reason


async def test_writes_racing_polls_never_interleave():
    cfg = _site(free_port(), poll=0.01)  # polling back to back
    async with Emulator(cfg, tick=0.01) as emu:
        async with running(cfg.devices[0], Backoff(initial=0.05, maximum=0.2)) as (src, got):
            await got.until(lambda: src.connected and src.state.polls > 3, what="polling")
            results = await asyncio.gather(*(src.operate("int16_bb", float(v)) for v in range(100, 160)))
            assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
            assert src.counters["short_replies"] == 0 and not src.counters["exceptions"] and src.counters["timeouts"] == 0
            assert src.state.failures == 0
            last = results[-1].value
            await got.until(lambda: got.latest["pq1/int16_bb"].value == last, 2.0, "last write visible")
            assert emu.fw.value(emu.fw.index("pq1", "int16_bb")) == last


class _DeafToWrites(asyncio.Protocol):
    """Answers FC3 reads with zeros and FC1 with zero bits, never answers a write."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t, self.buf = transport, b""
        _DeafToWrites.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 7:
            tid, _, length, unit = struct.unpack(">HHHB", self.buf[:7])
            if len(self.buf) < 6 + length:
                return
            pdu, self.buf = self.buf[7:6 + length], self.buf[6 + length:]
            fc = pdu[0]
            _DeafToWrites.functions.append(fc)
            if fc == 3:
                n = struct.unpack(">H", pdu[3:5])[0]
                resp = bytes((3, 2 * n)) + bytes(2 * n)
            elif fc == 1:
                n = struct.unpack(">H", pdu[3:5])[0]
                resp = bytes((1, (n + 7) // 8)) + bytes((n + 7) // 8)
            else:
                continue  # the write vanishes
            self.t.write(struct.pack(">HHHB", tid, 0, len(resp) + 1, unit) + resp)  # type: ignore[attr-defined]

    connections = 0
    functions: list[int] = []


async def test_an_unanswered_write_times_out_and_the_link_is_renewed():
    server = await asyncio.get_running_loop().create_server(_DeafToWrites, "127.0.0.1", 0)
    _DeafToWrites.connections, _DeafToWrites.functions = 0, []
    try:
        dev = _site(server.sockets[0].getsockname()[1], poll=0.1).devices[0]
        async with running(dev, Backoff(initial=0.05, maximum=0.2)) as (src, got):
            await got.until(lambda: src.connected and src.state.polls >= 1, what="polling")
            res = await src.operate("CB", 2)
            assert (res.ok, res.status, res.function) == (False, "timed_out", 5), res
            assert "may or may not have taken effect" in res.reason
            assert src.counters["command_timeouts"] == 1
            # a late reply must never be taken for a poll's: the session reconnects
            await got.until(lambda: src.state.reconnects >= 1 and src.connected, 3.0, "reconnect")
            assert _DeafToWrites.connections >= 2 and 5 in _DeafToWrites.functions
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def test_refusals_before_anything_is_sent():
    from gateway.southbound.modbus.driver import ModbusSource

    dev = _site(free_port()).devices[0]
    src = ModbusSource(dev)
    res = await src.operate("CB", 2)
    assert (res.ok, res.status, res.function) == (False, "not_connected", 5)
    res = await src.operate("nope", 1)
    assert res.status == "refused" and "no point 'nope' on pq1" in res.reason
    res = await src.operate("int16_bb", float("nan"))
    assert res.status == "refused" and "not a finite number" in res.reason
    res = await src.operate("CB", True)  # a bool is not a position code
    assert res.status == "refused" and "value_map" in res.reason
    res = await src.operate("uint16_bb", -20.0)  # raw -20 in a uint16
    assert res.status == "refused" and "outside uint16 (0..65535)" in res.reason
    assert src.counters["commands"] == 5 and src.counters["commands_refused"] == 5
