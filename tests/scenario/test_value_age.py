"""The value age a network fault report gives is that of live values: retained copies the broker hands
the recorder at subscription (stored seconds ago) do not count."""

from __future__ import annotations

from datetime import datetime, timezone

from devices.scenario.profiled import network_effect
from devices.scenario.recorder import Sample


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_retained_copies_do_not_count_in_the_value_age() -> None:
    t0 = 1_800_000_000.0
    live = [Sample(t0 + 0.1 * k, "m/P", 1.0, {}, k, _iso(t0 + 0.1 * k - 0.04)) for k in range(10)]  # 40 ms old
    stored = [Sample(t0 + 0.05, f"m/S{k}", 1, {}, None, _iso(t0 - 9), True) for k in range(30)]  # 9 s old, retained
    fault = {"kind": "latency", "injected_at": 3.0, "cleared_at": 8.0}
    age = network_effect(fault, live + stored, t0)["value_age_ms"]
    assert 39 <= age["before"] <= 41, age
    unmarked = [Sample(s.at, s.key, s.value, s.quality, s.seq, s.timestamp) for s in stored]
    assert network_effect(fault, live + unmarked, t0)["value_age_ms"]["before"] > 8000  # what the median was
