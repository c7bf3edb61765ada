"""Network profile model: zones, links between them, allowed flows and link emulation.

A profile is data (``configs/profiles/NAME.yaml``); the lab turns it into namespaces,
veth pairs, routes and nftables files. Errors name the YAML path of the bad value and
say how to fix it, because profiles are hand-written by network engineers.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway import shipped
from gateway.protocols import standard_ports

#: Lab addresses come from 10.200.0.0/16. They only ever exist inside network namespaces
#: created in a private (unshared) network namespace that has no default route and no
#: interface towards the host, so they can never leave the machine.
LAB_SUPERNET = ipaddress.ip_network("10.200.0.0/16")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Zone(_Strict):
    """One network namespace (an IEC 62443 zone / a Purdue level)."""

    level: float | None = Field(None, description="Purdue level, for documentation (1, 3.5, 4 ...)")
    description: str = ""


class Emulation(_Strict):
    """Per-direction link impairments (a→b is 'up', towards control; b→a is 'down')."""

    delay_ms: float = Field(0.0, ge=0, le=10_000, description="one-way mean delay")
    jitter_ms: float = Field(0.0, ge=0, le=10_000, description="uniform ± around delay_ms")
    loss_pct: float = Field(0.0, ge=0, le=100)
    rate_up_kbit: float | None = Field(None, gt=0, description="a→b bandwidth; null = unlimited")
    rate_down_kbit: float | None = Field(None, gt=0, description="b→a bandwidth; null = unlimited")
    queue_packets: int = Field(1000, ge=1, description="drop-tail queue per direction")

    @model_validator(mode="after")
    def _jitter_below_delay(self) -> "Emulation":
        if self.jitter_ms > self.delay_ms:
            raise ValueError(f"jitter_ms ({self.jitter_ms}) must not exceed delay_ms ({self.delay_ms})")
        return self


class Fault(_Strict):
    """A scheduled link fault, relative to lab start (seconds).

    flap: down ``down_s`` every ``period_s``; partition: down from ``at_s`` for ``duration_s``;
    maintenance-window: down daily from ``start`` (HH:MM UTC) for ``duration_s``.
    """

    kind: Literal["flap", "partition", "maintenance-window"]
    at_s: float = Field(0.0, ge=0)
    duration_s: float | None = Field(None, gt=0)
    period_s: float | None = Field(None, gt=0)
    down_s: float | None = Field(None, gt=0)
    start: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> "Fault":
        need = {"flap": ("period_s", "down_s"), "partition": ("duration_s",), "maintenance-window": ("start", "duration_s")}
        missing = [f for f in need[self.kind] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"fault kind {self.kind!r} needs {', '.join(missing)}")
        if self.kind == "flap" and self.down_s >= self.period_s:  # type: ignore[operator]
            raise ValueError("flap down_s must be shorter than period_s")
        return self


class Link(_Strict):
    """A point-to-point segment between two zones (a veth pair, or two via a router zone)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,9}$")
    a: str
    b: str
    subnet: str | None = Field(None, description="a /24 inside 10.200.0.0/16; default auto")
    mode: Literal["duplex", "diode"] = "duplex"
    emulate: Emulation | None = None
    faults: list[Fault] = []

    @field_validator("subnet")
    @classmethod
    def _in_lab_range(cls, v: str | None) -> str | None:
        if v is None:
            return v
        net = ipaddress.ip_network(v, strict=True)
        if not net.subnet_of(LAB_SUPERNET) or net.prefixlen > 29:  # type: ignore[arg-type]
            raise ValueError(f"subnet {v} must be inside {LAB_SUPERNET} and at most /29 (lab addresses never route out)")
        return v


class Allow(_Strict):
    """A flow that may be *initiated* from one zone to another (replies are always allowed)."""

    from_: str = Field(alias="from")
    to: str
    proto: Literal["tcp", "udp"] = "tcp"
    ports: list[int] = Field(min_length=1, description="port numbers; `field` stands for the standard port of "
                                                        "every registered field protocol (Modbus, DNP3, MMS, ...)")

    @field_validator("ports", mode="before")
    @classmethod
    def _field_ports(cls, v: object) -> object:
        """Expand `field` from the protocol registry, so a new protocol needs no profile edits."""
        if isinstance(v, list) and "field" in v:
            out: list[object] = []
            for p in v:
                out.extend(dict.fromkeys(standard_ports().values()) if p == "field" else [p])
            return out
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        for p in v:
            if not 1 <= p <= 65535:
                raise ValueError(f"port {p} is outside 1..65535")
        return v


class GatewayPolicy(_Strict):
    """What the gateway itself must do in this profile (read by the gateway/CLI)."""

    northbound: Literal["mqtt", "diode", "courier"] = "mqtt"
    subscribe: bool = True
    accept_commands: bool = True
    diode_port: int = Field(47000, ge=1, le=65535)


class Profile(_Strict):
    name: str
    description: str = ""
    zones: dict[str, Zone] = {}
    links: list[Link] = []
    allow: list[Allow] = []
    gateway: GatewayPolicy = GatewayPolicy()
    broker_port: int = Field(1883, ge=1, le=65535)

    @property
    def flat(self) -> bool:
        """No zones: everything on loopback (today's behaviour)."""
        return not self.zones

    @model_validator(mode="after")
    def _references(self) -> "Profile":
        names = set(self.zones)
        for z in names:
            if not z.isidentifier() or len(z) > 12 or not z.islower():
                raise ValueError(f"zones.{z}: zone names are lowercase identifiers of at most 12 characters")
        seen_links: set[str] = set()
        seen_pairs: set[frozenset[str]] = set()
        for i, link in enumerate(self.links):
            for end in ("a", "b"):
                if getattr(link, end) not in names:
                    raise ValueError(f"links.{i}.{end}: unknown zone {getattr(link, end)!r}; define it under zones: ({', '.join(sorted(names)) or 'none defined'})")
            if link.a == link.b:
                raise ValueError(f"links.{i}: a and b are both {link.a!r}; a link joins two different zones")
            if link.name in seen_links:
                raise ValueError(f"links.{i}.name: duplicate link name {link.name!r}")
            pair = frozenset((link.a, link.b))
            if pair in seen_pairs:
                raise ValueError(f"links.{i}: a second link between {link.a} and {link.b}; use one link per zone pair")
            seen_links.add(link.name)
            seen_pairs.add(pair)
            if link.mode == "diode" and link.emulate is not None:
                raise ValueError(f"links.{i}.emulate: a diode link cannot also be emulated; drop emulate or mode: diode")
            if link.faults and link.emulate is None:
                raise ValueError(f"links.{i}.faults: faults need an emulated link; add emulate: {{}}")
        nets = [(i, ipaddress.ip_network(l.subnet)) for i, l in enumerate(self.links) if l.subnet]
        for i, a in nets:
            for j, b in nets:
                if i < j and a.overlaps(b):
                    raise ValueError(f"links.{j}.subnet: {b} overlaps links.{i}.subnet {a}; give each link its own subnet")
        for i, rule in enumerate(self.allow):
            for end, zone in (("from", rule.from_), ("to", rule.to)):
                if zone not in names:
                    raise ValueError(f"allow.{i}.{end}: unknown zone {zone!r}")
        return self


class ProfileError(ValueError):
    """A profile that cannot be loaded; the message names the file and YAML path."""


def _fmt(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid network profile"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("function-after[_references(), Profile]",))
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  at {loc or '(top level)'}: {msg}")
    return "\n".join(lines)


def parse_profile(data: object, source: str = "<profile>") -> Profile:
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a YAML mapping with name:, zones:, links:, allow:")
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        raise ProfileError(_fmt(e, source)) from None


def profile_path(name_or_path: str | Path) -> Path:
    """A path, or a profile name: the user's ``configs/profiles/NAME.yaml`` else the shipped one."""
    return shipped.find(name_or_path, "profile")


def available_profiles() -> list[str]:
    return shipped.names("profile")


def load_profile(name_or_path: str | Path = "flat") -> Profile:
    """Load ``configs/profiles/NAME.yaml`` (or a path); ``flat`` is the default."""
    path = profile_path(name_or_path)
    if not path.exists():
        raise ProfileError(f"{path}: no such profile; choose one of: {', '.join(available_profiles())}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML: {e}") from None
    return parse_profile(data, str(path))
