"""The whole site file: site, gateway options, substations and the devices of every registered protocol.

It sits above both the neutral site layer (gateway.site) and the protocol layer (gateway.protocols),
which is why it is not inside either: the protocols build on the site model, the site file on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeAlias, Union

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from gateway.protocols import device_models
from gateway.site.isolate import ISOLATE_BYTES, in_child
from gateway.site.load import ConfigError, load_model  # noqa: F401 - ConfigError is part of this API
from gateway.site.model import (
    DeviceBase,
    Site,
    Substation,
    _Model,
    _unique,
    check_base_voltages,
)
from gateway.site.options import GatewayOptions
from gateway.site.plant.check import check_site
from gateway.site.plant.model import PlantModel
from gateway.site.rules import SiteRules

if TYPE_CHECKING:  # the checker sees the common base; at run time the union of every registered protocol
    Device: TypeAlias = DeviceBase
else:
    #: one member per registered protocol, told apart by `protocol:`
    Device = Annotated[Union[tuple(device_models())], Field(discriminator="protocol")]


class Config(SiteRules, _Model):
    """The whole site file."""

    site: Site
    gateway: GatewayOptions = Field(default_factory=GatewayOptions)
    substations: list[Substation] = Field(min_length=1)
    devices: list[Device] = Field(min_length=1)
    plant: PlantModel | None = Field(None, description="the site's electrical plant; `kind: plant` points read it")
    _paths_cache: tuple | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _references(self) -> "Config":
        paths = self.equipment_paths()
        errors: list[str] = []
        _unique([s.name for s in self.substations], "substations", errors)
        for si, s in enumerate(self.substations):
            _unique([b.name for b in s.bays], f"substations[{si}].bays", errors)
            for bi, b in enumerate(s.bays):
                _unique([e.name for e in b.equipment], f"substations[{si}].bays[{bi}].equipment", errors)
        _unique([d.name for d in self.devices], "devices", errors)
        endpoints: dict[tuple[str, int], str] = {}
        mrids: dict[str, str] = {}
        topics: dict[tuple, str] = {}
        for di, d in enumerate(self.devices):
            ep = (d.host, d.port)
            if ep in endpoints and d.enabled:
                errors.append(f"@devices[{di}].port: {d.host}:{d.port} is already used by device {endpoints[ep]!r}")
            endpoints[ep] = d.name
            names = [p.name for p in d.points]
            _unique(names, f"devices[{di}].points", errors)
            for pi, p in enumerate(d.points):
                here = f"@devices[{di}].points[{pi}]"
                m = p.measurement
                if m.equipment not in paths:
                    errors.append(
                        f"{here}.measurement.equipment: {m.equipment!r} is not a substation/bay/equipment of this site"
                        f" (e.g. {next(iter(paths))!r})"
                    )
                    continue
                mrid = self.measurement_mrid_text(p)  # the text: no UUID objects (the error shows the same)
                if mrid in mrids:
                    errors.append(f"{here}.measurement.mrid: duplicate mRID {mrid} (also {mrids[mrid]})")
                mrids[mrid] = f"devices[{di}].points[{pi}] ({d.name}/{p.name})"
                tk = (m.equipment, m.type, m.phases)
                if tk in topics:
                    errors.append(
                        f"{here}.measurement: {m.equipment} already has a {m.type} measurement with phases {m.phases}"
                        f" ({topics[tk]}); set different phases or equipment"
                    )
                topics[tk] = f"{d.name}/{p.name}"
                if p.signal is not None and p.signal.kind == "derived" and p.signal.group not in {g.name for g in d.groups}:
                    errors.append(f"{here}.signal.group: no load group {p.signal.group!r} in devices[{di}].groups")
                if p.signal is not None and p.signal.kind == "counter" and p.signal.source not in names:
                    errors.append(f"{here}.signal.source: no point {p.signal.source!r} on device {d.name}")
        check_base_voltages(self.site, self.substations, errors)
        check_site(self.plant, paths, self.devices, errors)
        if errors:
            raise ValueError("\n".join(errors))
        return self


def load_config(path: str | Path, isolate: bool | None = None, gateway_only: bool = False) -> Config:
    """Load and validate a site config; raises :class:`ConfigError`.

    ``gateway_only``: after validation, drop what only the emulator uses (each point's
    ``signal`` and ``faults``): about a third of the model's memory, kept for the
    gateway's whole life otherwise.

    PyYAML's node tree for a 10,000-point site peaks at ~150 MB, and CPython keeps that
    memory after it is freed. Large files are therefore parsed in a forked child that
    hands back the pickled model (~5 MB): the long-running gateway on a Raspberry Pi
    keeps only the model (measured: 175 → 93 MB RSS for 10,000 points).
    """
    if isolate is None:
        try:
            isolate = Path(path).stat().st_size > ISOLATE_BYTES
        except OSError:
            isolate = False
    if not isolate:
        return _load_site(path, False, gateway_only)
    # large files: the parsed data is cached (YAML parsing is most of a large site's start-up)
    return in_child(_load_site, path, True, gateway_only)


def _load_site(path: str | Path, cache: bool, gateway_only: bool) -> Config:
    cfg = load_model(path, Config, cache)
    if gateway_only:
        drop_emulator_fields(cfg)
    return cfg


#: the fields of a point that only the emulator uses
_DROPPED = frozenset({"signal", "faults"})


def drop_emulator_fields(cfg: Config, fields_sets: bool = True) -> None:
    """What ``gateway_only`` drops (:func:`load_config`), in a validated model. ``fields_sets=False``: for a model
    that is encoded into runtime tables and dropped (gateway/startup.py), which never read the sets of fields
    given: only the two fields are blanked (10,000 points: 0.03-0.04 → 0.01 CPU-s)."""
    if not fields_sets:
        for d in cfg.devices:
            for p in d.points:
                fields = p.__dict__
                fields["signal"] = None
                fields["faults"] = []
        return
    shared: dict[frozenset, set] = {}
    for d in cfg.devices:
        for p in d.points:
            fields = p.__dict__  # not through pydantic's __setattr__ (20,000 calls at 10,000 points), so the
            fields["signal"] = None  # two names are added to the set of assigned fields here, as it would
            fields["faults"] = []
            key = frozenset(p.__pydantic_fields_set__) | _DROPPED
            p.__pydantic_fields_set__ = shared.get(key) or shared.setdefault(key, set(key))
            _share_fields_set(p.measurement, shared)


def _share_fields_set(m: BaseModel, shared: dict[frozenset, set]) -> None:
    """One set object for every point with the same explicitly-set fields.

    pydantic keeps a set of the field names given in the file per model instance: ~730
    bytes, twice per point (point and measurement), 70 MB at 50,000 points. The gateway
    never assigns to point models after this, and pickling (isolated loading) keeps the
    sharing.
    """
    fs = m.__pydantic_fields_set__
    key = frozenset(fs)
    m.__pydantic_fields_set__ = shared.setdefault(key, fs)
