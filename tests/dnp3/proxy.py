"""A loopback TCP proxy that can swallow what the outstation sends — to lose responses on purpose."""

from __future__ import annotations

import asyncio
import contextlib


class LossyProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drop_next_upstream = 0  # chunks from the outstation to drop
        self.dropped: list[bytes] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> "LossyProxy":
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [cw, sw]

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, upstream: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await r.read(65536):
                    if upstream and self.drop_next_upstream > 0:
                        self.drop_next_upstream -= 1
                        self.dropped.append(chunk)
                        continue
                    w.write(chunk)
                    await w.drain()
            w.close()

        for t in (asyncio.create_task(pump(cr, sw, False)), asyncio.create_task(pump(sr, cw, True))):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        """Drop every current connection (both sides see the link go); new ones are still accepted."""
        for w in self._writers:
            w.close()
        self._writers.clear()

    async def close(self) -> None:
        if self._server:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for w in self._writers:
            w.close()
