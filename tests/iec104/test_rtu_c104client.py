"""The emulated RTU of the sample site, fed by the firmware, read and operated by c104's *client*
driven directly (not our driver): GI values equal the RTU's, counter interrogation, clock sync,
and a select-before-execute double command that moves the firmware."""

# no `from __future__ import annotations`: c104 checks callback annotations as real classes

import asyncio
import threading
import time
from pathlib import Path

import c104

from devices.emulator import Emulator
from devices.scenario.ports import with_free_ports
from gateway.config import load_config

SAMPLE = Path(__file__).resolve().parents[2] / "gateway/protocols/iec104/sample-site.yaml"


class Client:
    def __init__(self, port: int) -> None:
        self.values: dict[int, tuple[object, object]] = {}
        self.lock = threading.Lock()
        self.client = c104.Client(tick_rate_ms=50, command_timeout_ms=3000)
        self.con = self.client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
        st = self.con.add_station(common_address=1)
        for ioa, t in ((1001, c104.Type.M_ME_NC_1), (1002, c104.Type.M_ME_NB_1), (1003, c104.Type.M_IT_TB_1),
                       (2001, c104.Type.M_DP_TB_1)):
            st.add_point(io_address=ioa, type=t).on_receive(callable=self.on_value)
        self.cmd = st.add_point(io_address=3001, type=c104.Type.C_DC_NA_1, command_mode=c104.CommandMode.SELECT_AND_EXECUTE)
        self.client.start()

    def on_value(self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage) -> c104.ResponseState:
        with self.lock:
            self.values[point.io_address] = (point.value, message.cot)
        return c104.ResponseState.NONE

    def wait_open(self, timeout: float) -> bool:
        """STARTDT confirmed within ``timeout``? (c104 sometimes never sends it: adapter gap 4)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.con.is_connected and not self.con.is_muted:
                return True
            time.sleep(0.05)
        return False


def connect(port: int) -> Client:
    for _ in range(12):  # ~30 % of c104 client connects never send STARTDT (adapter gap 4)
        cl = Client(port)
        if cl.wait_open(1.0):
            return cl
        cl.client.stop()
    raise AssertionError("no STARTDT confirmation in 12 connections")


async def test_c104_client_reads_and_operates_the_firmware_fed_rtu() -> None:
    cfg = with_free_ports(load_config(SAMPLE))
    async with Emulator(cfg, tick=0.1) as emu:
        rtu = emu.devices["rtu104"].server
        loop = asyncio.get_running_loop()
        cl = await loop.run_in_executor(None, connect, rtu.port)
        try:
            assert await loop.run_in_executor(None, lambda: cl.con.interrogation(common_address=1, wait_for_response=True))
            assert await loop.run_in_executor(None, lambda: cl.con.counter_interrogation(common_address=1, wait_for_response=True))
            deadline = time.monotonic() + 10
            while len(cl.values) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert cl.values[2001] == (c104.Double.ON, c104.Cot.INTERROGATED_BY_STATION)
            value, cot = cl.values[1003]
            assert cot == c104.Cot.REQUESTED_BY_GENERAL_COUNTER and value == int(rtu.value("E"))
            assert isinstance(cl.values[1001][0], float) and cl.values[1001][0] > 0  # the daily profile's P
            assert await loop.run_in_executor(None, lambda: cl.con.clock_sync(common_address=1, wait_for_response=True))
            assert rtu.stats["clock_syncs"] == 1
            cl.cmd.value = c104.Double.OFF
            for _ in range(3):  # c104's client occasionally never sends the execute after a confirmed select
                if await loop.run_in_executor(None, lambda: cl.cmd.transmit(cause=c104.Cot.ACTIVATION)):
                    break
            else:
                raise AssertionError(f"select/execute not confirmed three times: {rtu.stats}")
            idx = emu.fw.index("rtu104", "Pos")
            deadline = time.monotonic() + 10
            while emu.fw.value(idx) != 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert emu.fw.value(idx) == 1  # the firmware took the command
            while cl.values[2001] != (c104.Double.OFF, c104.Cot.SPONTANEOUS) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert cl.values[2001] == (c104.Double.OFF, c104.Cot.SPONTANEOUS)  # and reported it back
            assert rtu.stats["commands"] >= 1 and rtu.stats["commands_refused"] == 0
        finally:
            await loop.run_in_executor(None, cl.client.stop)


class _Seen(Client):
    """The client above, keeping each point's quality and time tag too."""

    def on_value(self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage) -> c104.ResponseState:
        with self.lock:
            self.values[point.io_address] = (point.value, message.cot)
            self.infos.setdefault(point.io_address, []).append((point.value, message.cot, point.quality, point.recorded_at))
        return c104.ResponseState.NONE

    def __init__(self, port: int) -> None:
        self.infos: dict[int, list[tuple]] = {}
        super().__init__(port)


async def test_a_station_connecting_late_reads_current_values_and_gets_each_change() -> None:
    """With no controlling station connected the emulator tells the RTU nothing; one connecting later reads the
    firmware's current values in its GI (the emulator hands c104 every point changed meanwhile before the
    connection's first frame), and a change while it is connected comes spontaneously with the firmware's
    value, quality and the tick's time."""
    cfg = with_free_ports(load_config(SAMPLE))
    async with Emulator(cfg, tick=0.1) as emu:
        rtu = emu.devices["rtu104"].server
        fw = emu.fw
        emu._task.cancel()  # ticks by hand from here
        await asyncio.sleep(0.05)
        pos = fw.index("rtu104", "Pos")
        assert fw.value(pos) == 2 and rtu.value("Pos") == c104.Double.ON
        fw.set_state(pos, 1)
        fw.tick(time.time())
        emu._push_changed(time.time())
        assert rtu.value("Pos") == c104.Double.ON  # nobody listens: the RTU was not told
        loop = asyncio.get_running_loop()
        cl = await loop.run_in_executor(None, lambda: _connect_seen(rtu.port))
        try:
            assert await loop.run_in_executor(None, lambda: cl.con.interrogation(common_address=1, wait_for_response=True))
            deadline = time.monotonic() + 10
            while 2001 not in cl.values and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert cl.values[2001] == (c104.Double.OFF, c104.Cot.INTERROGATED_BY_STATION)  # the firmware's value now
            # listened to: a change and a quality fault arrive spontaneously on the next tick
            fw.set_state(pos, 2)
            fw.set_fault(pos, {"kind": "quality", "flags": ["substituted"]})
            t = time.time()
            fw.tick(t)
            emu._push_changed(t)
            while cl.infos[2001][-1][1] != c104.Cot.SPONTANEOUS and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            value, cot, quality, at = cl.infos[2001][-1]
            assert (value, cot) == (c104.Double.ON, c104.Cot.SPONTANEOUS)
            assert quality == c104.Quality.Substituted
            assert abs(at.timestamp() - t) < 0.002  # CP56Time2a of the tick (ms)
            assert rtu.stats["spontaneous_sent"] >= 1
        finally:
            await loop.run_in_executor(None, cl.client.stop)


def _connect_seen(port: int) -> _Seen:
    for _ in range(12):  # see connect()
        cl = _Seen(port)
        if cl.wait_open(1.0):
            return cl
        cl.client.stop()
    raise AssertionError("no STARTDT confirmation in 12 connections")
