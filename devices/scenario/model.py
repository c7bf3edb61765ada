"""Scenario files: a seeded timeline of faults on named targets, plus expectations.

```yaml
name: rtu comms loss
seed: 7
config: ../primary-substation.yaml      # relative to this file; --config overrides
steps:
  - name: mute
    at: 2s                               # or  after: previous+5s  /  after: mute+1s
    target: {device: rtu1}               # or {point: rtu1/Ia} / {point: <mRID>} / {bay: KGM/F1} / {link: wan}
    fault: {kind: silent}
    duration: 3s                         # cleared after this (default: until the end)
    expect:
      - {point: rtu1/Ia, quality: INVALID, within: 3s}
  - every: 1s for 4s                     # repeated injections
    ...
```
Times are validated here (syntax); names (devices, points, step references) are checked
against the site config by :func:`devices.scenario.resolve.resolve`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from devices.scenario.faults import Fault
from gateway.site.model import parse_duration

QUALITY_WORDS = (
    "GOOD", "QUESTIONABLE", "INVALID", "SUBSTITUTED", "DEFAULTED", "overFlow", "outOfRange", "badReference",
    "oscillatory", "failure", "oldData", "inconsistent", "inaccurate", "test", "operatorBlocked", "suspect",
)
_AFTER = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:\+\s*(\S+))?\s*$")
_EVERY = re.compile(r"^\s*(\S+)\s+for\s+(\S+)\s*$")


def _seconds(v: Any, what: str) -> float:
    try:
        s = parse_duration(v)
    except ValueError:
        raise ValueError(f"{what}: expected a time such as 500ms, 12s, 5m, got {v!r}") from None
    if s < 0:
        raise ValueError(f"{what}: {v!r} is negative; times count from the scenario start")
    return s


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Target(_M):
    """Exactly one of device / point / points / bay / link."""

    device: str | None = None
    point: str | None = Field(None, description="device/point, or the measurement's mRID")
    points: list[str] | None = Field(None, min_length=1, description="several device/point or mRIDs")
    bay: str | None = Field(None, description="substation/bay: every point measuring equipment of that bay")
    link: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "Target":
        given = [k for k in ("device", "point", "points", "bay", "link") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"name exactly one of device, point, points, bay, link (got {', '.join(given) or 'none'})")
        return self

    def __str__(self) -> str:
        k = next(k for k in ("device", "point", "points", "bay", "link") if getattr(self, k) is not None)
        v = getattr(self, k)
        return f"{k} {','.join(v) if isinstance(v, list) else v}"


class Expectation(_M):
    """What the system under test must publish: a value and/or quality within a time."""

    point: str = Field(description="device/point or mRID")
    quality: str | None = Field(None, description="validity (GOOD, QUESTIONABLE, INVALID), source or a detail flag")
    value: float | None = None
    tolerance: float = Field(1e-6, ge=0)
    above: float | None = Field(None, description="value must be greater than this")
    below: float | None = Field(None, description="value must be less than this")
    within: float = Field(5.0, description="seconds after the step (or `after`) by which it must be seen")
    after: str | None = Field(None, description="step name, or a time (12s); default: the step it belongs to, else 0")
    fresh: bool = Field(False, description="a sample must be published inside the window (a value still current "
                                           "from before does not count): values resume after an outage")
    name: str | None = None

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> float:
        return _seconds(v, "within")

    @field_validator("quality")
    @classmethod
    def _quality(cls, v: str | None) -> str | None:
        if v is not None and v not in QUALITY_WORDS:
            raise ValueError(f"{v!r} is not a quality; use one of {', '.join(QUALITY_WORDS)}")
        return v

    @model_validator(mode="after")
    def _something(self) -> "Expectation":
        if self.quality is None and self.value is None and self.above is None and self.below is None:
            raise ValueError("say what to expect: quality, value, above and/or below")
        return self


class OrderExpectation(_M):
    """Events that must be published in this order (sequence of events, SOE)."""

    order: list[Expectation] = Field(min_length=2)
    within: float = 10.0
    name: str | None = None

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> float:
        return _seconds(v, "within")


class Step(_M):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$")
    at: float | None = Field(None, description="seconds from the start: 12s")
    after: str | None = Field(None, description="previous+5s, or <step name>+5s")
    every: str | None = Field(None, description="30s for 5m: inject every 30 s for 5 min (from `at`/`after`, default 0)")
    target: Target
    fault: Fault
    duration: float | None = Field(None, description="clear after this; default: active until the end")
    expect: list[Expectation] = Field(default_factory=list)

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> float | None:
        return None if v is None else _seconds(v, "at")

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        if v is None:
            return None
        s = _seconds(v, "duration")
        if s <= 0:
            raise ValueError("duration must be longer than 0s; leave it out to keep the fault to the end")
        return s

    @field_validator("after")
    @classmethod
    def _after(cls, v: str | None) -> str | None:
        if v is None:
            return v
        m = _AFTER.match(v)
        if not m:
            raise ValueError(f"after: expected previous+5s or <step name>+5s, got {v!r}")
        if m.group(2) is not None:
            _seconds(m.group(2), "after")
        return v

    @field_validator("every")
    @classmethod
    def _every(cls, v: str | None) -> str | None:
        if v is None:
            return v
        m = _EVERY.match(v)
        if not m:
            raise ValueError(f"every: expected '<period> for <total>', e.g. '30s for 5m', got {v!r}")
        if _seconds(m.group(1), "every") <= 0:
            raise ValueError("every: the period must be longer than 0s")
        _seconds(m.group(2), "every ... for")
        return v

    @model_validator(mode="after")
    def _when(self) -> "Step":
        if self.at is not None and self.after is not None:
            raise ValueError("give either at or after, not both")
        if self.at is None and self.after is None and self.every is None:
            raise ValueError("say when: at: 12s, after: previous+5s or every: 30s for 5m")
        return self

    def offset_after(self) -> tuple[str, float]:
        m = _AFTER.match(self.after or "")
        assert m
        return m.group(1), _seconds(m.group(2), "after") if m.group(2) else 0.0

    def repeats(self) -> tuple[float, float] | None:
        if self.every is None:
            return None
        m = _EVERY.match(self.every)
        assert m
        return _seconds(m.group(1), "every"), _seconds(m.group(2), "every ... for")


class Scenario(_M):
    name: str
    description: str = ""
    seed: int = Field(0, description="seeds the firmware (noise, random walks) so a run repeats exactly")
    config: str | None = Field(None, description="site config, relative to the scenario file")
    profile: str | None = Field(None, description="network profile (configs/profiles/NAME.yaml) the run uses; "
                                                  "--profile overrides. Needed for link faults")
    tick: float = Field(0.1, description="firmware tick: simulated time advances by this per tick")
    epoch: float = Field(1_767_225_600.0, description="simulated time (epoch s) of the first tick; default 2026-01-01T00:00Z")
    duration: float | None = Field(None, description="run length; default: last event + the longest expectation window + 1s")
    steps: list[Step] = Field(default_factory=list)
    expect: list[Expectation | OrderExpectation] = Field(default_factory=list)

    @field_validator("tick", "duration", mode="before")
    @classmethod
    def _time(cls, v: Any, info) -> float | None:
        if v is None:
            return None
        s = _seconds(v, info.field_name)
        if s <= 0:
            raise ValueError(f"{info.field_name} must be longer than 0s")
        return s

    @model_validator(mode="after")
    def _names(self) -> "Scenario":
        seen: set[str] = set()
        for i, s in enumerate(self.steps):
            if s.name:
                if s.name in seen or s.name == "previous":
                    raise ValueError(f"steps[{i}].name: {s.name!r} is used twice (or is the reserved word 'previous')")
                seen.add(s.name)
        return self
