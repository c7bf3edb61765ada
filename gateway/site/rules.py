"""The site file's helpers a running gateway calls, without pydantic: mixed into the model
(gateway/config.py) and into its runtime twin (gateway/site/tables.py), so both answer alike."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from gateway.site.cimtypes import MRID_NAMESPACE, uuid5_text
from gateway.site.tables import Rules

if TYPE_CHECKING:
    from gateway.site.model import Bay, Equipment, PointBase, Site, Substation


_NAMESPACE = MRID_NAMESPACE.bytes


class SiteRules(Rules):
    """Equipment paths and mRIDs of a whole site (``site``, ``substations``; a private ``_paths_cache``)."""

    __slots__ = ()
    if TYPE_CHECKING:
        site: Site
        substations: list[Substation]
        _paths_cache: Any

    def equipment_paths(self) -> dict[str, tuple[Substation, Bay, Equipment]]:
        # cached: equipment_mrid() asks for it once per point (quadratic on a 10,000-point site)
        cached = self._paths_cache
        if cached is not None and cached[0] is self.substations:
            return cached[1]
        paths = {
            f"{s.name}/{b.name}/{e.name}": (s, b, e) for s in self.substations for b in s.bays for e in b.equipment
        }
        self._paths_cache = (self.substations, paths)
        return paths

    def measurement_mrid(self, p: PointBase) -> uuid.UUID:
        m = p.measurement
        if m.mrid is not None:
            return m.mrid
        return uuid.uuid5(MRID_NAMESPACE, f"{self.site.name}/{m.equipment}/{m.name or p.name}")

    def measurement_mrid_text(self, p: PointBase) -> str:
        """``str(self.measurement_mrid(p))``, without UUID objects (validation and the catalog: once per point each)."""
        m = p.measurement
        if m.mrid is not None:
            return str(m.mrid)
        return uuid5_text(_NAMESPACE, f"{self.site.name}/{m.equipment}/{m.name or p.name}")

    def equipment_mrid(self, path: str, paths: dict[str, tuple[Substation, Bay, Equipment]] | None = None) -> uuid.UUID:
        """``paths``: :meth:`equipment_paths` computed once by a caller that asks for many (keeps start-up linear)."""
        _, _, e = (paths or self.equipment_paths())[path]
        return e.mrid or uuid.uuid5(MRID_NAMESPACE, f"{self.site.name}/{path}")
