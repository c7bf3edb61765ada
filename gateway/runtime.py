"""What every long-running gridgate command shares: the default site file, signal-aware running,
sleeping for ``--duration``, loopback port helpers and the one-line user messages on stderr."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Coroutine

from gateway.site.duration import parse_duration

# asyncio, socket and gateway.shipped (importlib.resources) are imported where used: `gridgate gateway`
# imports this module before it forks the loader child of a first start, and asyncio's ~0.03 s of imports
# would be on the way to the first value there (the gateway imports it while the child compiles)

DEFAULT_CONFIG = "configs/primary-substation.yaml"
#: set by the network lab in every process it starts inside a zone: the profile is already applied
LAB_ZONE_ENV = "GRIDGATE_LAB_ZONE"


def default_config() -> str:
    """The example site: a user's own ``configs/primary-substation.yaml`` (or $GRIDGATE_CONFIG_DIR's),
    else the shipped one (gateway/shipped.py)."""
    from gateway import shipped

    return str(shipped.default_site())


def duration_arg(v: str) -> float:
    """argparse type for ``--duration 30`` / ``10s`` / ``5m``."""
    try:
        return parse_duration(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def sleep_for(duration: float | None) -> None:
    """Sleep ``duration`` seconds, or forever (until cancelled) when None."""
    import asyncio

    if duration is None:
        await asyncio.Event().wait()
    else:
        await asyncio.sleep(duration)


def run(coro: Coroutine[Any, Any, int | None], loop: str = "asyncio") -> int:
    """Run until done or SIGINT/SIGTERM; a signal cancels the main task so cleanup (offline status) runs.

    ``loop="uvloop"`` runs it on uvloop (libuv): the caller checked :func:`uvloop_missing` first."""
    import asyncio

    async def runner() -> int | None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return 0

    if loop == "uvloop":
        import uvloop

        return uvloop.run(runner()) or 0
    return asyncio.run(runner()) or 0


LOOPS = ("auto", "asyncio", "uvloop")


def resolve_loop(loop: str) -> str:
    """``auto`` is uvloop where it is installed (a dependency on Linux and macOS), else asyncio's own.

    Why uvloop first: one emulated Modbus request costs 0.92–0.99× libmodbus' CPU on it against
    0.70–0.79× on asyncio's selector loop, with the same server code (docs/performance.md,
    "Stop 24: Modbus server on asyncio"); the loop itself is ~11 of ~13 µs per request there."""
    if loop != "auto":
        return loop
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def uvloop_missing(loop: str, flag: str = "--loop") -> str | None:
    """Why ``loop`` cannot run here (uvloop not installed), or None."""
    if loop != "uvloop":
        return None
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return (f"{flag} uvloop: uvloop is not installed; install it with `pip install 'gridgate[fast]'` "
                "(or Debian's python3-uvloop), or use --loop asyncio to run on asyncio's own loop")
    return None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (loopback by default)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
