"""Reachability and RTT probes, run *inside* a zone (``lab.run_in(zone, [python, -m, ...])``).

``listen PORT... [--banner TEXT]``  accept TCP on every port until stdin closes (prints ``ready``).
With ``--banner`` every accepted connection is first sent ``TEXT`` and a newline (so a
connector can tell *which* listener it reached), and ports that cannot be bound are reported
(``ready failed=22,502``) instead of ending the listener.
``connect HOST:PORT... [--expect TEXT]``  try each concurrently, print JSON {target: outcome}: ``open``,
``refused`` (RST), ``blocked`` (our own output filter: EPERM), ``timeout`` (dropped on
the way), ``unreachable``. With ``--expect``, ``open`` only when the peer's first line is
``TEXT``; otherwise ``wrong-listener:<its first line>`` or ``no-banner`` (some other program).
``rtt HOST:PORT --count N``  TCP handshake times (one SYN→SYN/ACK round trip each), JSON list of seconds
(``null`` for handshakes that did not finish in time).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import sys
import time


def _target(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


async def connect_one(host: str, port: int, timeout: float, expect: str | None = None) -> str:
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES):
            return "blocked"
        if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "unreachable"
        return f"error:{errno.errorcode.get(e.errno or 0, e.errno)}"
    outcome = "open"
    if expect is not None:
        try:
            line = (await asyncio.wait_for(r.readline(), timeout)).decode(errors="replace").strip()
        except (asyncio.TimeoutError, OSError):
            line = ""
        if not line:
            outcome = "no-banner"
        elif line != expect:
            outcome = f"wrong-listener:{line[:80]}"
    w.close()
    return outcome


async def connect_all(targets: list[str], timeout: float, expect: str | None = None) -> dict[str, str]:
    res = await asyncio.gather(*(connect_one(*_target(t), timeout, expect) for t in targets))
    return dict(zip(targets, res))


async def rtt(host: str, port: int, count: int, interval: float, timeout: float) -> list[float | None]:
    """Connections stay open until every probe is done, so no FIN/ACK traffic from earlier
    probes queues ahead of a later SYN and biases its round trip."""
    open_writers: list[asyncio.StreamWriter] = []

    async def one(delay: float) -> float | None:
        await asyncio.sleep(delay)
        t0 = time.perf_counter()
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, asyncio.TimeoutError):
            return None
        dt = time.perf_counter() - t0
        open_writers.append(w)
        return dt

    res = list(await asyncio.gather(*(one(i * interval) for i in range(count))))
    for w in open_writers:
        w.close()
    return res


async def listen(ports: list[int], banner: str | None = None) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            if banner is not None:
                w.write(banner.encode() + b"\n")
                await w.drain()
            await r.read()  # hold until the client closes (keeps RTT probes free of FIN traffic)
        except (ConnectionError, asyncio.CancelledError):
            pass
        w.close()

    servers, failed = [], []
    for p in ports:
        try:
            servers.append(await asyncio.start_server(handle, "0.0.0.0", p))
        except OSError:
            if banner is None:
                raise
            failed.append(p)
    print("ready" + (f" failed={','.join(map(str, failed))}" if failed else ""), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m devices.netlab.probe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("listen")
    lp.add_argument("ports", nargs="+", type=int)
    lp.add_argument("--banner", default=None, help="line sent first on every accepted connection")
    cp = sub.add_parser("connect")
    cp.add_argument("targets", nargs="+")
    cp.add_argument("--timeout", type=float, default=1.0)
    cp.add_argument("--expect", default=None, help="count a connection as open only if the peer's first line is this")
    rp = sub.add_parser("rtt")
    rp.add_argument("target")
    rp.add_argument("--count", type=int, default=20)
    rp.add_argument("--interval", type=float, default=0.05)
    rp.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args(argv)
    if a.cmd == "listen":
        asyncio.run(listen(a.ports, a.banner))
    elif a.cmd == "connect":
        print(json.dumps(asyncio.run(connect_all(a.targets, a.timeout, a.expect))))
    else:
        print(json.dumps(asyncio.run(rtt(*_target(a.target), a.count, a.interval, a.timeout))))


if __name__ == "__main__":
    main()
