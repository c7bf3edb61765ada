"""What fault targets resolve against, as plain compact tables: the enabled devices (protocol, port,
point names), each point's measurement mRID and bay, and the plant quantities.

Why: ``gridgate emulate`` with its fault API kept the site's pydantic model only to resolve
targets, ~106 KiB per 20-point Modbus device against ~1 KiB for these tables
(docs/performance.md, "Stop 24"). They are built where the model is (the emulator's forked
loader, devices/emusite.py, or :meth:`devices.scenario.resolve.Site.of`) and are plain data, so
the compiled-site cache keeps them (:meth:`to_data` / :meth:`of_data`, marshal-able).
"""

from __future__ import annotations

import uuid
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

Key = str  # "device/point"


@dataclass
class SiteTables:
    """Per enabled device (config order): name, protocol, configured port, point names; per point (the
    devices' points one after the other): its measurement mRID (16 bytes) and bay (index into ``bays``)."""

    devices: list[str]
    protocols: list[str]
    ports: list[int]
    points: list[tuple[str, ...]]
    mrids: bytes
    bays: list[str]
    bay_of: array
    # plant quantities: key → (equipment it reads, its plant section or None); None: the site has no plant
    plant: dict[Key, tuple[str, str | None]] | None = None

    def __post_init__(self) -> None:
        self.position = {d: k for k, d in enumerate(self.devices)}
        self.first = array("I", [0])  # flat index of each device's first point (and the total last)
        for pts in self.points:
            self.first.append(self.first[-1] + len(pts))

    def keys(self) -> Iterator[tuple[int, Key]]:
        """(flat point index, "device/point") of every point, in config order."""
        i = 0
        for dev, pts in zip(self.devices, self.points):
            for p in pts:
                yield i, f"{dev}/{p}"
                i += 1

    def key_of(self, i: int) -> Key:
        k = bisect_right(self.first, i) - 1
        return f"{self.devices[k]}/{self.points[k][i - self.first[k]]}"

    def mrid(self, i: int) -> str:
        return str(uuid.UUID(bytes=bytes(self.mrids[16 * i:16 * i + 16])))

    def find_mrid(self, ref: str) -> Key | None:
        """The point of a measurement mRID written as ``str(uuid)`` does (lower case, hyphens), or None."""
        try:
            u = uuid.UUID(ref)
        except ValueError:
            return None
        if str(u) != ref:
            return None
        at = self.mrids.find(u.bytes)
        while at >= 0 and at % 16:
            at = self.mrids.find(u.bytes, at + 1)
        return None if at < 0 else self.key_of(at // 16)

    def to_data(self) -> dict:
        return {"devices": self.devices, "protocols": self.protocols, "ports": self.ports, "points": self.points,
                "mrids": self.mrids, "bays": self.bays, "bay_of": self.bay_of.tobytes(), "plant": self.plant}

    @classmethod
    def joined(cls, parts: list["SiteTables"]) -> "SiteTables":
        """The tables of a site read in parts (devices/emusite.py), from those of its parts in file order:
        equal to :func:`site_tables` of the whole site (bays numbered in order of first use)."""
        bays: dict[str, int] = {}
        bay_of = array("I")
        for t in parts:
            to = [bays.setdefault(b, len(bays)) for b in t.bays]
            bay_of.extend(to[k] for k in t.bay_of)
        return cls([d for t in parts for d in t.devices], [p for t in parts for p in t.protocols],
                   [p for t in parts for p in t.ports], [p for t in parts for p in t.points],
                   b"".join(t.mrids for t in parts), list(bays), bay_of, None)

    @classmethod
    def of_data(cls, data: dict) -> "SiteTables":
        bay_of = array("I")
        bay_of.frombytes(data["bay_of"])
        return cls(list(data["devices"]), list(data["protocols"]), list(data["ports"]),
                   [tuple(p) for p in data["points"]], bytes(data["mrids"]), list(data["bays"]), bay_of,
                   data["plant"])


def site_tables(cfg: Any, points: dict[str, tuple[str, ...]] | None = None,
                mrids: Sequence[bytes] | None = None) -> SiteTables:
    """The tables of a site's config model; ``points``: point-name tuples to share (a device's Endpoint's);
    ``mrids``: the measurement mRIDs of every device's points (disabled ones too), when the caller has them
    (gateway/chunkload.py: a uuid5 per point, ~1.3 CPU-s at 190,000 points)."""
    from devices.scenario.plant_faults import plant_points

    devices: list[str] = []
    protocols: list[str] = []
    ports: list[int] = []
    names: list[tuple[str, ...]] = []
    out = bytearray()
    bays: dict[str, int] = {}
    bay_of = array("I")
    shared = points or {}
    at = 0
    for d in cfg.devices:
        at += len(d.points)
        if not d.enabled:
            continue
        devices.append(d.name)
        protocols.append(d.protocol)
        ports.append(d.port)
        pts = tuple(p.name for p in d.points)
        names.append(shared.get(d.name, pts) if shared.get(d.name) == pts else pts)
        if mrids is not None:
            out += b"".join(mrids[at - len(d.points):at])
        for p in d.points:
            if mrids is None:
                out += cfg.measurement_mrid(p).bytes
            bay = "/".join(p.measurement.equipment.split("/")[:2])
            bay_of.append(bays.setdefault(bay, len(bays)))
    return SiteTables(devices, protocols, ports, names, bytes(out), list(bays), bay_of, plant_points(cfg))
