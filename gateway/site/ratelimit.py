"""Warnings about what a peer sends, at most one line per (peer, kind) per interval, with the count it
stands for: a flood of bad frames must not flood the log (nor hide that it happened).
Used by the emulated devices (devices/netguard.py), the DNP3 link and the diode receiver."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


class PeerWarnings:
    """Per-frame warnings, at most one line per (peer, kind) per ``interval``, with the count it stands for."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # (peer, kind) -> (logged at, suppressed since)
        self.suppressed = 0

    def warn(self, peer: str, kind: str, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` unless this peer's ``kind`` was logged within the interval; True if logged."""
        now = self.clock()
        key = (peer, kind)
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            self.suppressed += 1
            return False
        more = f" ({last[1]} more like it from {peer} in the last {now - last[0]:.0f} s)" if last and last[1] else ""
        self.logger.warning(msg + more, *args)
        self._last[key] = (now, 0)
        if len(self._last) > 4096:  # a scan from many source ports: forget the oldest
            for k in sorted(self._last, key=lambda k: self._last[k][0])[:2048]:
                del self._last[k]
        return True
