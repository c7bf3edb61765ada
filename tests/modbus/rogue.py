"""A deliberately wrong Modbus TCP peer for the driver tests: a well-framed MBAP reply whose
PDU carries fewer registers than asked (or none at all). The emulated device never does
this, which is why it is a separate, tiny server."""

from __future__ import annotations

import asyncio
import struct


class ShortReplier(asyncio.Protocol):
    """Answers FC3/FC4 with ``count - short`` registers of value 7; other functions with 01."""

    short = 1
    mute = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 7:
            tid, pid, length, unit = struct.unpack(">HHHB", self.buf[:7])
            if len(self.buf) < 6 + length:
                return
            pdu, self.buf = self.buf[7 : 6 + length], self.buf[6 + length :]
            fc = pdu[0]
            if self.mute:
                continue
            if fc in (3, 4):
                _, count = struct.unpack(">HH", pdu[1:5])
                n = max(0, count - self.short)
                resp = bytes((fc, 2 * n)) + struct.pack(f">{n}H", *([7] * n))
            else:
                resp = bytes((fc | 0x80, 1))
            self.transport.write(struct.pack(">HHHB", tid, 0, len(resp) + 1, unit) + resp)  # type: ignore[attr-defined]


async def start_short_replier(short: int = 1) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()

    def factory() -> ShortReplier:
        p = ShortReplier()
        p.short = short
        return p

    server = await loop.create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]
