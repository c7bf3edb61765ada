"""Durations as a site file writes them (``500ms``, ``2s``, ``5m``), without pydantic (the CLI and a
running gateway parse them; gateway/site/model.py re-exports)."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(v: object) -> float:
    """`250ms`, `2s`, `5m`, `1h` or a number of seconds → seconds."""
    if isinstance(v, bool):
        raise ValueError("expected a duration such as 500ms, 2s, 5m")
    d: float | None = None
    if isinstance(v, (int, float)):
        d = float(v)
    elif isinstance(v, str):
        m = _DURATION.match(v)
        if m:
            d = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if d is None:
        raise ValueError(f"expected a duration such as 500ms, 2s, 5m, got {v!r}")
    if not math.isfinite(d):
        raise ValueError(f"expected a finite duration such as 500ms, 2s, 5m, got {v!r}")
    return d


#: the shortest poll interval: below a millisecond a poll loop only burns the CPU
MIN_POLL = 0.001
