"""Raw-socket helpers for the emulated Modbus server tests: frames are built by hand so the
tests check the wire, not a client library's idea of it."""

from __future__ import annotations

import asyncio
import struct

from devices.modbus import ArrayDataModel

TIMEOUT = 2.0

#: table sizes of the test device; 2005 bits is not a multiple of 16, so a per-word bound shows
SIZES = dict(coil=2005, discrete_input=2005, holding=200, input=50)


def adu(pdu: bytes, tid: int = 1, unit: int = 1, pid: int = 0, length: int | None = None) -> bytes:
    n = len(pdu) + 1 if length is None else length
    return struct.pack(">HHHB", tid, pid, n, unit) + pdu


def req(fc: int, fmt: str = "", *fields: int, tail: bytes = b"") -> bytes:
    return bytes((fc,)) + struct.pack(">" + fmt, *fields) + tail


class Raw:
    """One TCP connection speaking raw MBAP."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> "Raw":
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        return cls(r, w)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = TIMEOUT) -> tuple[int, int, int, bytes]:
        """one ADU: (tid, pid, unit, pdu)"""
        head = await asyncio.wait_for(self.reader.readexactly(7), timeout)
        tid, pid, length, unit = struct.unpack(">HHHB", head)
        pdu = await asyncio.wait_for(self.reader.readexactly(length - 1), timeout)
        return tid, pid, unit, pdu

    async def call(self, pdu: bytes, tid: int = 1, unit: int = 1) -> bytes:
        await self.send(adu(pdu, tid, unit))
        rtid, pid, runit, resp = await self.recv()
        assert (rtid, pid, runit) == (tid, 0, unit)
        return resp

    async def silent(self, wait: float = 0.3) -> bool:
        """True when nothing arrives within ``wait`` (and the connection stays open)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), wait)
        except asyncio.TimeoutError:
            return True
        assert data, "connection was closed instead of staying silent"
        return False

    async def closed(self, wait: float = TIMEOUT) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1024), wait)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError):
            pass


def make_model() -> ArrayDataModel:
    m = ArrayDataModel(**SIZES)
    for a in range(SIZES["holding"]):
        m.set_register("holding", a, 1000 + a)
    for a in range(SIZES["input"]):
        m.set_register("input", a, 2000 + a)
    m.set_bits("coil", 0, [1, 0, 1, 1, 0, 0, 0, 1, 1, 1])
    m.set_bits("discrete_input", 0, [0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1])
    return m
