"""An independent MQTT 3.1.1 subscriber written from the spec on raw sockets.

The publisher under test uses gmqtt; checking it with gmqtt would share its bugs. This
peer decodes PUBLISH packets itself and records topic, payload, QoS, retain and dup flags.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from dataclasses import dataclass


@dataclass
class Got:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(header: int, body: bytes) -> bytes:
    out = bytearray([header])
    n = len(body)
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


class RawSubscriber:
    """``async with RawSubscriber(port, ["a/#"]) as sub: await sub.wait_for(lambda msgs: ...)``"""

    def __init__(self, port: int, topics: list[str], host: str = "127.0.0.1", client_id: str = "rawsub",
                 username: str | None = None, password: str | None = None, ssl_ctx: ssl.SSLContext | None = None,
                 clean: bool = True) -> None:
        self.clean = clean
        self.host, self.port, self.topics, self.client_id = host, port, topics, client_id
        self.username, self.password, self.ssl_ctx = username, password, ssl_ctx
        self.messages: list[Got] = []
        self.suback: bytes = b""
        self._task: asyncio.Task | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> "RawSubscriber":
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl_ctx), 5)
        flags = 0x02 if self.clean else 0x00
        payload = _str(self.client_id)
        if self.username is not None:
            flags |= 0x80
            payload += _str(self.username)
            if self.password is not None:
                flags |= 0x40
                payload += _str(self.password)
        self.writer.write(_packet(0x10, _str("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + payload))
        header, body = await asyncio.wait_for(self._read(), 5)
        if header >> 4 != 2 or body[1] != 0:
            raise ConnectionError(f"CONNACK refused: {body!r}")
        subs = b"".join(_str(t) + b"\x01" for t in self.topics)
        self.writer.write(_packet(0x82, struct.pack("!H", 1) + subs))
        while True:  # some brokers send retained messages before the SUBACK
            header, body = await asyncio.wait_for(self._read(), 5)
            if header >> 4 == 9:
                break
            self._handle(header, body)
        self.suback = body[2:]
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
        try:
            self.writer.write(b"\xe0\x00")
            self.writer.close()
        except Exception:
            pass

    async def _read(self) -> tuple[int, bytes]:
        header = (await self.reader.readexactly(1))[0]
        mult, n = 1, 0
        while True:
            b = (await self.reader.readexactly(1))[0]
            n += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        return header, await self.reader.readexactly(n) if n else b""

    async def _loop(self) -> None:
        try:
            while True:
                self._handle(*await self._read())
        except (asyncio.IncompleteReadError, ConnectionError):
            self._changed.set()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 0 publish, e.g. a Sparkplug NCMD or a retained STATE from a 'primary host'."""
        self.writer.write(_packet(0x30 | int(retain), _str(topic) + payload))

    def _handle(self, header: int, body: bytes) -> None:
        if header >> 4 != 3:
            return
        qos = (header >> 1) & 3
        (tlen,) = struct.unpack("!H", body[:2])
        topic = body[2:2 + tlen].decode()
        rest = body[2 + tlen:]
        if qos:
            mid, rest = rest[:2], rest[2:]
            self.writer.write(_packet(0x40, mid))
        self.messages.append(Got(topic, rest, qos, bool(header & 1), bool(header & 8)))
        self._changed.set()

    async def wait_for(self, pred, timeout: float = 10.0) -> bool:
        """Wait until ``pred(self.messages)`` is true; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred(self.messages):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))
            except asyncio.TimeoutError:
                pass
        return True

    def on(self, topic: str) -> list[Got]:
        return [m for m in self.messages if m.topic == topic]
