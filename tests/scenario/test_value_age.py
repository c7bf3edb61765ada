"""The value age a network fault report gives is that of live values: neither retained copies the
broker hands the recorder at subscription (stored seconds ago) nor each point's initial image at the
gateway's start-up (its age is the start-up time, not the path's delay) count; a value that waited
in a backlog does."""

from __future__ import annotations

from datetime import datetime, timezone

from devices.scenario.profiled import network_effect
from devices.scenario.recorder import Sample

T0 = 1_800_000_000.0
FAULT = {"kind": "latency", "injected_at": 3.0, "cleared_at": 8.0}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _live(key: str, age: float, n: int = 10) -> list[Sample]:
    return [Sample(T0 + 0.1 * k, key, 1.0, {}, k, _iso(T0 + 0.1 * k - age)) for k in range(n)]


def test_retained_copies_do_not_count_in_the_value_age() -> None:
    stored = [Sample(T0 + 0.05, f"m/S{k}", 1, {}, None, _iso(T0 - 9), True) for k in range(30)]
    again = [Sample(T0 + 0.5, f"m/S{k}", 1, {}, None, _iso(T0 - 9), True) for k in range(30)]  # a 2nd subscription
    age = network_effect(FAULT, _live("m/P", 0.04) + stored + again, T0)["value_age_ms"]
    assert 39 <= age["before"] <= 41, age


def test_the_initial_image_does_not_count_but_a_backlog_does() -> None:
    # start-up: every point's first value is 0.25-0.86 s old (the CI run that failed: median 332 ms)
    first = [Sample(T0 - 0.02, f"ied/X{k}", 1.0, {}, k, _iso(T0 - 0.02 - 0.86)) for k in range(20)]
    steady = [Sample(T0 + 0.2 + 0.1 * k, f"ied/X{k % 20}", 1.0, {}, 100 + k, _iso(T0 + 0.2 + 0.1 * k - 0.045))
              for k in range(25)]
    age = network_effect(FAULT, first + steady, T0)["value_age_ms"]
    assert 44 <= age["before"] <= 46, age
    # the same old values arriving after the point's first value (held in a spool) are what the path did
    late = [Sample(T0 + 2.5, f"ied/X{k % 20}", 1.0, {}, 200 + k, _iso(T0 + 2.5 - 0.86)) for k in range(40)]
    assert network_effect(FAULT, first + steady + late, T0)["value_age_ms"]["before"] >= 859
