"""Fixed-bucket histograms the status topic and ``/metrics`` both read (one source of truth), and the
event-loop lag probe that feeds one.

A ``Buckets`` is plain counters (no prometheus-client objects), so the publisher and the gateway can
own them without importing the optional metrics machinery; ``as_dict`` is what the status topic
carries and ``gateway.metrics`` turns it into a Prometheus histogram.
"""

from __future__ import annotations

import asyncio
import bisect
import time

#: reading received → PUBLISH written (QoS 0) or PUBACK received (QoS 1), seconds; long tail for spooled values
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0)
#: how late a timer fires, seconds
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Buckets:
    """Counts of observations at or below each upper bound, plus count and sum."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * len(self.bounds)  # per bucket, not cumulative
        self.count = 0
        self.sum = 0.0

    def observe(self, v: float) -> None:
        v = max(0.0, v)
        i = bisect.bisect_left(self.bounds, v)
        if i < len(self._counts):
            self._counts[i] += 1
        self.count += 1
        self.sum += v

    def observe_n(self, v: float, n: int) -> None:
        """``n`` observations of the same value at once: values written in one pass of the publisher that
        reached it together (one batch, one ``born``) have one latency."""
        v = max(0.0, v)
        i = bisect.bisect_left(self.bounds, v)
        if i < len(self._counts):
            self._counts[i] += n
        self.count += n
        self.sum += v * n

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound), ending with (inf, count)."""
        out, n = [], 0
        for b, c in zip(self.bounds, self._counts):
            n += c
            out.append((b, n))
        out.append((float("inf"), self.count))
        return out

    def as_dict(self) -> dict[str, int | float]:
        """``{"count", "sum", "<bound>": cumulative count, ..., "+Inf": count}`` (the status topic's shape)."""
        out: dict[str, int | float] = {"count": self.count, "sum": round(self.sum, 6)}
        for b, n in self.cumulative():
            out["+Inf" if b == float("inf") else f"{b:g}"] = n
        return out


def from_dict(d: dict) -> list[tuple[str, float]]:
    """Prometheus bucket pairs (``le`` label, cumulative count) from ``Buckets.as_dict()``."""
    pairs = [(k, float(v)) for k, v in d.items() if k not in ("count", "sum")]
    return sorted(pairs, key=lambda kv: float("inf") if kv[0] == "+Inf" else float(kv[0]))


async def measure_loop_lag(into: Buckets, period: float = 0.25) -> None:
    """Observe forever how late a ``period`` sleep wakes up: a stalled event loop shows as lag."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(period)
        into.observe(time.monotonic() - t - period)
