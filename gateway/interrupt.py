"""SIGTERM/SIGINT honoured while a large site is being built.

Loading a config and building the runtime tables are long synchronous steps (seconds at
50,000 points). asyncio's signal handlers only run when the event loop gets control
back, so a service manager's SIGTERM would wait for the whole build. Inside
:func:`interruptible` a signal raises :class:`BuildInterrupted` at once instead.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


class BuildInterrupted(BaseException):
    """A stop signal arrived during start-up (BaseException: no ``except Exception`` may swallow it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name} while starting")


def _raise(signum: int, frame: object) -> None:
    raise BuildInterrupted(signum)


@contextmanager
def interruptible(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Within the block a stop signal raises :class:`BuildInterrupted`; the previous handlers come back after.

    Only for synchronous code in the main thread (no awaits inside the block).
    """
    previous = {s: signal.signal(s, _raise) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)  # None: set outside Python
