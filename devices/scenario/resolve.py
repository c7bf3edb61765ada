"""Scenario names → site objects, and the step list → a flat, sorted timeline.

Every problem is reported with the scenario file, the YAML path and line
(``steps[2].target.point: no point 'Ixx' on device 'rtu1' ... (line 14)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydantic import ValidationError

from devices.scenario import plant_faults
from devices.scenario.faults import DATA_KINDS, NETWORK_KINDS, NOT_YET, POINT_KINDS, PROTOCOLS
from devices.scenario.model import Expectation, OrderExpectation, Scenario, Step, Target
from devices.scenario.plant_faults import PLANT_KINDS
from devices.scenario.sitetables import Key, SiteTables, site_tables
from gateway.config import Config, load_config
from gateway.site.load import ConfigError, _model_errors, format_loc, load_yaml


class TargetError(ValueError):
    """A target or fault that does not fit the site; the message says what exists."""


class NotYetError(TargetError):
    """A valid fault whose device/network hook does not exist yet: the run fails on it, loading does not."""


class Site:
    """Name lookups over one site: points by device/point or mRID, bays, devices.

    Works over :class:`~devices.scenario.sitetables.SiteTables` (compact, no model: what the
    emulator's fault API keeps); the dict views (``mrid_to_key``, ``key_to_mrid``, ``bay_points``,
    ``device_points``) are built on first use, for the scenario runner and recorder."""

    def __init__(self, tables: SiteTables, links: frozenset[str] | None = None) -> None:
        self.tables = tables
        self.links = links  # the running profile's emulated links; None: no profile (no network faults)
        self.protocol: dict[str, str] = dict(zip(tables.devices, tables.protocols))

    @classmethod
    def of(cls, cfg: Config, links: frozenset[str] | None = None) -> "Site":
        return cls(site_tables(cfg), links)

    @cached_property
    def key_to_mrid(self) -> dict[Key, str]:
        return {k: self.tables.mrid(i) for i, k in self.tables.keys()}

    @cached_property
    def mrid_to_key(self) -> dict[str, Key]:
        return {m: k for k, m in self.key_to_mrid.items()}

    @cached_property
    def device_points(self) -> dict[str, list[Key]]:
        return {d: [f"{d}/{p}" for p in pts] for d, pts in zip(self.tables.devices, self.tables.points)}

    @cached_property
    def bay_points(self) -> dict[str, list[Key]]:
        t = self.tables
        out: dict[str, list[Key]] = {}
        for i, k in t.keys():
            out.setdefault(t.bays[t.bay_of[i]], []).append(k)
        return out

    def keys(self) -> list[Key]:
        """Every point (device/point), sorted."""
        return sorted(k for _, k in self.tables.keys())

    def port_of(self, device: str) -> int:
        """The port the config gives a device (0: ephemeral)."""
        return self.tables.ports[self.tables.position[device]]

    def _points_of(self, dev: str) -> tuple[str, ...] | None:
        k = self.tables.position.get(dev)
        return None if k is None else self.tables.points[k]

    def point(self, ref: str) -> Key:
        dev, _, pt = ref.partition("/")
        names = self._points_of(dev)
        if names is not None and pt in names:
            return ref
        if (key := self.tables.find_mrid(ref.lower())) is not None:
            return key
        if names is not None:
            raise TargetError(f"no point {pt!r} on device {dev!r}; its points: {', '.join(names[:12])}")
        raise TargetError(
            f"{ref!r} is neither device/point nor a measurement mRID; devices: {', '.join(self.tables.devices)}"
        )

    def points(self, t: Target) -> list[Key]:
        """The points a point-level fault applies to."""
        if t.point is not None:
            return [self.point(t.point)]
        if t.points is not None:
            return [self.point(p) for p in t.points]
        if t.bay is not None:
            tb = self.tables
            try:
                b = tb.bays.index(t.bay)
            except ValueError:
                raise TargetError(f"no bay {t.bay!r} with points; bays: {', '.join(sorted(tb.bays))}") from None
            return [k for i, k in tb.keys() if tb.bay_of[i] == b]
        if t.device is not None:
            dev = self.device(t.device)
            return [f"{dev}/{p}" for p in self.tables.points[self.tables.position[dev]]]
        raise TargetError("a data fault needs a point, bay or device target, not a link")

    def device(self, name: str) -> str:
        if name not in self.tables.position:
            raise TargetError(f"no enabled device {name!r}; devices: {', '.join(self.tables.devices)}")
        return name

    def devices(self, t: Target) -> list[str]:
        """The devices a comms fault applies to."""
        if t.device is not None:
            return [self.device(t.device)]
        if t.point is not None or t.points is not None:
            return sorted({k.split("/", 1)[0] for k in self.points(t)})
        if t.bay is not None:
            return sorted({k.split("/", 1)[0] for k in self.points(t)})
        raise TargetError("a device fault needs a device, point or bay target")

    def check(self, t: Target, kind: str, fault: object = None) -> None:
        """Raise TargetError when this fault cannot be applied to this target."""
        if kind in NETWORK_KINDS or t.link is not None:
            if kind not in NETWORK_KINDS:
                raise TargetError(f"a link target takes a network fault ({', '.join(sorted(NETWORK_KINDS))}), not {kind!r}")
            if t.link is None:
                raise TargetError(f"fault {kind!r} is a network fault: give target: {{link: NAME}} (an emulated link of the profile)")
            if self.links is None:
                raise NotYetError(f"fault {kind!r}: {NOT_YET[kind]}")
            if t.link not in self.links:
                raise TargetError(f"no emulated link {t.link!r} in this profile; emulated links: "
                                  f"{', '.join(sorted(self.links)) or 'none (add emulate: to a link)'}")
            return
        if kind in POINT_KINDS:
            keys = self.points(t)
            if kind in PLANT_KINDS and (why := plant_faults.check_target(self.tables.plant, keys, kind)):
                raise TargetError(why)
            return
        for d in self.devices(t):
            proto = self.protocol[d]
            if kind in NOT_YET:
                raise NotYetError(f"fault {kind!r} on {d}: {NOT_YET[kind]}")
            if kind not in PROTOCOLS[proto]:
                raise TargetError(
                    f"fault {kind!r} does not apply to {proto} device {d}; {proto} takes "
                    f"{', '.join(sorted(PROTOCOLS[proto] | DATA_KINDS))}"
                )


@dataclass(frozen=True)
class Event:
    """One timeline action: inject (or clear) fault ``fid`` at scenario time ``t``."""

    t: float
    action: str  # "inject" | "clear"
    fid: str
    step: int
    target: Target
    fault: object
    label: str


@dataclass
class Anchor:
    start: float
    end: float | None


@dataclass
class Plan:
    scenario: Scenario
    cfg: Config
    site: Site
    events: list[Event]
    anchors: dict[str, Anchor]  # step name / "steps[i]" → first injection, last clear
    expectations: list[tuple[str, float, Expectation | OrderExpectation]]  # (yaml path, anchor time, expectation)
    duration: float
    warnings: list[str] = field(default_factory=list)


def load_scenario(path: str | Path, config: str | Path | Config | None = None,
                  links: frozenset[str] | None = None) -> Plan:
    """Read, validate and resolve a scenario file against its site config; raises ConfigError."""
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["expected a mapping at the top level (name:, seed:, steps:)"])
    try:
        scn = Scenario.model_validate(data)
    except ValidationError as e:
        raise ConfigError(str(path), _model_errors(e, data, lines)) from None
    if isinstance(config, Config):
        cfg = config
    else:
        ref = config or (Path(path).parent / scn.config if scn.config else None)
        if ref is None:
            raise ConfigError(str(path), ["config: no site config; add `config: ../site.yaml` or pass --config"])
        cfg = load_config(ref)
    if links is None and scn.profile:
        links = profile_links(scn.profile, str(path), lines)
    return resolve(scn, cfg, str(path), lines, links)


def profile_links(name: str, path: str = "<scenario>", lines: dict[tuple, int] | None = None) -> frozenset[str]:
    """The emulated links of a network profile (the targets of link faults)."""
    from devices.netlab.profile import load_profile

    try:
        prof = load_profile(name)
    except ValueError as e:
        raise ConfigError(path, [_where(lines or {}, ("profile",), str(e))]) from None
    return frozenset(l.name for l in prof.links if l.emulate is not None)


def _where(lines: dict[tuple, int], loc: tuple, msg: str) -> str:
    line, probe = None, loc
    while probe and line is None:
        line = lines.get(probe)
        probe = probe[:-1]
    return f"{format_loc(loc)}: {msg}" + (f" (line {line})" if line else "")


def resolve(scn: Scenario, cfg: Config, path: str = "<scenario>", lines: dict[tuple, int] | None = None,
            links: frozenset[str] | None = None) -> Plan:
    """``links``: the emulated links of the profile the run uses (network faults need one)."""
    lines = lines or {}
    site = Site.of(cfg, links)
    problems: list[str] = []
    warnings: list[str] = []  # faults this build cannot apply yet: the run reports them as errors
    events: list[Event] = []
    anchors: dict[str, Anchor] = {}
    expectations: list[tuple[str, float, Expectation | OrderExpectation]] = []
    prev: Anchor | None = None
    for i, st in enumerate(scn.steps):
        here = ("steps", i)
        try:
            site.check(st.target, st.fault.kind, st.fault)
        except NotYetError as e:
            warnings.append(_where(lines, here + ("fault",), str(e)))
        except TargetError as e:
            loc = here + ("fault" if "fault" in str(e)[:6] else "target",)
            problems.append(_where(lines, loc, str(e)))
        start = _start(st, i, prev, anchors, lines, problems)
        reps = st.repeats()
        times = [start]
        if reps:
            period, total = reps
            times = [start + k * period for k in range(int(total / period + 1e-9))] or [start]
        dur = st.duration
        if dur is None and reps and st.fault.kind != "set_state":
            dur = reps[0]  # each repetition lasts until the next one
        label = st.name or f"steps[{i}]"
        end = None
        for k, t in enumerate(times):
            fid = f"{label}#{k}" if len(times) > 1 else label
            events.append(Event(t, "inject", fid, i, st.target, st.fault, label))
            if dur is not None:
                events.append(Event(t + dur, "clear", fid, i, st.target, st.fault, label))
                end = t + dur
        a = Anchor(start, end)
        anchors[label] = a
        prev = a
        for j, ex in enumerate(st.expect):
            _check_points(site, ex, here + ("expect", j), lines, problems)
            t0 = _anchor_time(ex.after, anchors, lines, here + ("expect", j, "after"), problems) if ex.after else start
            expectations.append((format_loc(here + ("expect", j)), t0, ex))
    for j, ex in enumerate(scn.expect):
        loc = ("expect", j)
        items = ex.order if isinstance(ex, OrderExpectation) else [ex]
        for n, it in enumerate(items):
            _check_points(site, it, loc + (("order", n) if isinstance(ex, OrderExpectation) else ()), lines, problems)
        ref = items[0].after
        t0 = _anchor_time(ref, anchors, lines, loc + ("after",), problems) if ref else 0.0
        expectations.append((format_loc(loc), t0, ex))
    late = [e for e in events if scn.duration is not None and e.t > scn.duration]
    if late:
        problems.append(_where(lines, ("duration",), f"{scn.duration:g}s ends before {len(late)} timeline events "
                               f"(the last at {max(e.t for e in late):g}s); lengthen it or leave it out"))
    if problems:
        raise ConfigError(path, problems)
    events.sort(key=lambda e: (e.t, e.action == "inject", e.fid))  # clears before injections at the same time
    last = max([e.t for e in events] + [0.0])
    windows = [t + ex.within for _, t, ex in expectations]
    duration = scn.duration or max([last + 1.0] + [w + 0.5 for w in windows])
    return Plan(scn, cfg, site, events, anchors, expectations, duration, warnings)


def _check_points(site: Site, ex: Expectation, loc: tuple, lines: dict, problems: list[str]) -> None:
    try:
        site.point(ex.point)
    except TargetError as e:
        problems.append(_where(lines, loc + ("point",), str(e)))


def _start(st: Step, i: int, prev: Anchor | None, anchors: dict[str, Anchor], lines: dict, problems: list[str]) -> float:
    if st.at is not None:
        return st.at
    if st.after is None:
        return 0.0
    ref, off = st.offset_after()
    if ref == "previous":
        if prev is None:
            problems.append(_where(lines, ("steps", i, "after"), "'previous' in the first step; use at: instead"))
            return 0.0
        return prev.start + off
    if ref not in anchors:
        problems.append(
            _where(lines, ("steps", i, "after"), f"no earlier step named {ref!r}; earlier steps: {', '.join(anchors) or 'none'}")
        )
        return 0.0
    return anchors[ref].start + off


def _anchor_time(ref: str, anchors: dict[str, Anchor], lines: dict, loc: tuple, problems: list[str]) -> float:
    """``12s``, ``<step>`` (its first injection) or ``<step>.end`` (its last clear)."""
    name, _, part = ref.partition(".")
    if name in anchors:
        a = anchors[name]
        if part == "end":
            if a.end is None:
                problems.append(_where(lines, loc, f"step {name!r} has no duration, so it has no end"))
                return 0.0
            return a.end
        return a.start
    try:
        from gateway.site.model import parse_duration

        return parse_duration(ref)
    except ValueError:
        problems.append(_where(lines, loc, f"{ref!r} is neither a step name (optionally .end) nor a time like 12s"))
        return 0.0
