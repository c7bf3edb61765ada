"""Write a site as a CGMES 3.0 RDF/XML document (IEC 61970-552) with lxml.

The containment (Substation → VoltageLevel → Bay → equipment), the topology of
:mod:`gateway.cgmes.topology`, and one Analog/Discrete/Accumulator per gridgate point with
**the mRIDs the MQTT catalog publishes** (the catalog is built here and its mRIDs are reused,
so a subscriber joins values to the model by ``measurement.mRID``). gridgate knows no
impedances or ratings beyond voltages, so the model carries none (a topology/measurement
model, not a load-flow case).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from lxml import etree

from gateway.cgmes import topology as topo
from gateway.cgmes.vocab import CIM, MD, NSMAP, PROFILES, RDF, SWITCHES, cgmes_type, derived, rid
from gateway.cim import build_catalog
from gateway.config import Config
from gateway.site.model import kv_name

_ID = f"{{{RDF}}}ID"
_ABOUT = f"{{{RDF}}}about"
_RES = f"{{{RDF}}}resource"


class _Doc:
    """One RDF/XML document being written."""

    def __init__(self, cfg: Config, profiles: list[str], now: datetime) -> None:
        self.root = etree.Element(f"{{{RDF}}}RDF", nsmap=NSMAP)
        head = etree.SubElement(self.root, f"{{{MD}}}FullModel")
        head.set(_ABOUT, f"urn:uuid:{derived(cfg.site.name, 'model', *profiles)}")
        self.lit(head, "md", "Model.created", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.lit(head, "md", "Model.scenarioTime", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.lit(head, "md", "Model.description", f"gridgate site {cfg.site.name}: {cfg.site.description}".strip(": "))
        self.lit(head, "md", "Model.modelingAuthoritySet", f"urn:gridgate:{cfg.site.name}")
        self.lit(head, "md", "Model.version", "1")
        for p in profiles:
            self.lit(head, "md", "Model.profile", PROFILES[p])

    @staticmethod
    def lit(el: etree._Element, ns: str, prop: str, value: object) -> None:
        etree.SubElement(el, f"{{{NSMAP[ns]}}}{prop}").text = str(value)

    def obj(self, cls: str, mrid: uuid.UUID, name: str, description: str = "") -> etree._Element:
        el = etree.SubElement(self.root, f"{{{CIM}}}{cls}")
        el.set(_ID, rid(mrid))
        self.lit(el, "cim", "IdentifiedObject.mRID", mrid)
        self.lit(el, "cim", "IdentifiedObject.name", name)
        if description:
            self.lit(el, "cim", "IdentifiedObject.description", description)
        return el

    @staticmethod
    def ref(el: etree._Element, prop: str, target: uuid.UUID) -> None:
        etree.SubElement(el, f"{{{CIM}}}{prop}").set(_RES, f"#{rid(target)}")

    @staticmethod
    def enum(el: etree._Element, prop: str, literal: str) -> None:
        etree.SubElement(el, f"{{{CIM}}}{prop}").set(_RES, f"{CIM}{literal}")

    def bytes(self) -> bytes:
        return etree.tostring(self.root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def export(cfg: Config, profiles: tuple[str, ...] = ("eq",), now: datetime | None = None) -> dict[str, bytes]:
    """The site as CGMES documents: ``{"eq": ...}``, or ``{"eq": ..., "op": ...}`` with measurements in OP.

    Raises :class:`~gateway.cgmes.topology.TopologyError` when the site cannot be laid out.
    """
    now = now or datetime.now(timezone.utc)
    split = "op" in profiles
    eq = _Doc(cfg, ["eq"] if split else ["eq", "op"], now)
    op = _Doc(cfg, ["op"], now) if split else eq
    lay = topo.derive(cfg)
    site = cfg.site.name
    s_mrid = lambda s: s.mrid or derived(site, s.name)  # noqa: E731
    eq.obj("GeographicalRegion", derived(site, "region"), cfg.site.operator or site)
    sub_region = eq.obj("SubGeographicalRegion", derived(site, "subregion"), site, cfg.site.description)
    eq.ref(sub_region, "SubGeographicalRegion.Region", derived(site, "region"))
    base: dict[float, uuid.UUID] = {}
    declared = {b.nominal_kv: b for b in cfg.site.base_voltages}
    for vl in lay.levels.values():
        if vl.kv not in base:  # one BaseVoltage per nominal voltage of the site
            d = declared.get(vl.kv)
            base[vl.kv] = (d.mrid if d and d.mrid else None) or derived(site, "BaseVoltage", kv_name(vl.kv))
            el = eq.obj("BaseVoltage", base[vl.kv], (d.name if d and d.name else None) or kv_name(vl.kv))
            eq.lit(el, "cim", "BaseVoltage.nominalVoltage", f"{vl.kv:g}")
    for kv, d in declared.items():  # declared but used by no level: still the site's
        if kv not in base:
            el = eq.obj("BaseVoltage", d.mrid or derived(site, "BaseVoltage", kv_name(kv)), d.name or kv_name(kv))
            eq.lit(el, "cim", "BaseVoltage.nominalVoltage", f"{kv:g}")
    level_mrid = {k: (vl.decl.mrid if vl.decl and vl.decl.mrid else derived(site, k)) for k, vl in lay.levels.items()}
    bay_mrid: dict[str, uuid.UUID] = {}
    for s in cfg.substations:
        el = eq.obj("Substation", s_mrid(s), s.name, s.description)
        eq.ref(el, "Substation.Region", derived(site, "subregion"))
        for key, vl in lay.levels.items():
            if vl.substation != s.name:
                continue
            el = eq.obj("VoltageLevel", level_mrid[key], vl.name, vl.decl.description if vl.decl else "")
            if vl.decl is not None:
                for prop, v in (("highVoltageLimit", vl.decl.high_limit_kv), ("lowVoltageLimit", vl.decl.low_limit_kv)):
                    if v is not None:
                        eq.lit(el, "cim", f"VoltageLevel.{prop}", f"{v:g}")
            eq.ref(el, "VoltageLevel.Substation", s_mrid(s))
            eq.ref(el, "VoltageLevel.BaseVoltage", base[vl.kv])
        for b in s.bays:
            bp = f"{s.name}/{b.name}"
            bay_mrid[bp] = b.mrid or derived(site, bp)
            el = eq.obj("Bay", bay_mrid[bp], b.name, b.description)
            eq.ref(el, "Bay.VoltageLevel", level_mrid[lay.level_of_bay[bp]])
    node_mrid = {n: derived(site, "node", n) for n in lay.nodes}
    for n, level in lay.nodes.items():
        el = eq.obj("ConnectivityNode", node_mrid[n], n.split("/", 1)[1])
        eq.ref(el, "ConnectivityNode.ConnectivityNodeContainer", level_mrid[level])

    def terminals(eq_mrid: uuid.UUID, path: str, nodes: list[str]) -> list[uuid.UUID]:
        out = []
        for i, n in enumerate(nodes, 1):
            t = derived(site, "terminal", path, str(i))
            el = eq.obj("Terminal", t, f"{path.rsplit('/', 1)[-1]} T{i}")
            eq.lit(el, "cim", "ACDCTerminal.sequenceNumber", i)
            eq.ref(el, "Terminal.ConductingEquipment", eq_mrid)
            eq.ref(el, "Terminal.ConnectivityNode", node_mrid[n])
            out.append(t)
        return out

    tap_steps = _tap_steps(cfg)
    first_terminal: dict[str, uuid.UUID] = {}
    eq_paths = cfg.equipment_paths()
    for path, (s, b, e) in eq_paths.items():
        if e.type == "EnergySource":  # written below as the grid infeed (ExternalNetworkInjection)
            continue
        m = cfg.equipment_mrid(path)
        el = eq.obj(e.type, m, e.name, e.description)
        eq.ref(el, "Equipment.EquipmentContainer", bay_mrid[f"{s.name}/{b.name}"])
        kv = lay.levels[lay.level_of_bay[f"{s.name}/{b.name}"]].kv
        if e.type != "PowerTransformer":
            eq.ref(el, "ConductingEquipment.BaseVoltage", base[kv])
        if e.type in SWITCHES:
            eq.lit(el, "cim", "Switch.normalOpen", "false")
            eq.lit(el, "cim", "Switch.retained", "false")
        nodes = lay.terminals.get(path, [])
        ts = terminals(m, path, nodes)
        if ts:
            first_terminal[path] = ts[0]
        if e.type == "PowerTransformer":
            for i, (t, level) in enumerate(zip(ts, lay.transformer_levels.get(path, [])), 1):
                end = derived(site, "end", path, str(i))
                el = eq.obj("PowerTransformerEnd", end, f"{e.name} end {i}")
                eq.lit(el, "cim", "TransformerEnd.endNumber", i)
                eq.lit(el, "cim", "PowerTransformerEnd.ratedU", f"{lay.levels[level].kv:g}")
                eq.ref(el, "PowerTransformerEnd.PowerTransformer", m)
                eq.ref(el, "TransformerEnd.Terminal", t)
                eq.ref(el, "TransformerEnd.BaseVoltage", base[lay.levels[level].kv])
                if i == 1 and path in tap_steps:
                    lo, hi, normal = tap_steps[path]
                    tc = eq.obj("RatioTapChanger", derived(site, "tap", path), f"{e.name} OLTC")
                    for prop, v in (("lowStep", lo), ("highStep", hi), ("neutralStep", (lo + hi) // 2), ("normalStep", normal)):
                        eq.lit(tc, "cim", f"TapChanger.{prop}", v)
                    eq.lit(tc, "cim", "TapChanger.ltcFlag", "true")
                    eq.ref(tc, "RatioTapChanger.TransformerEnd", end)
    for key, n in lay.sources.items():
        if key in eq_paths:  # the site's own EnergySource equipment: the grid infeed, with its own mRID and bay
            sub, bay, e = eq_paths[key]
            m = cfg.equipment_mrid(key)
            level = lay.nodes[n]
            el = eq.obj("ExternalNetworkInjection", m, e.name, e.description or "the grid supply")
            eq.ref(el, "Equipment.EquipmentContainer", bay_mrid[f"{sub.name}/{bay.name}"])
        else:
            level = key.rsplit("/", 1)[0]
            m = derived(site, "source", key)
            el = eq.obj("ExternalNetworkInjection", m, f"{lay.levels[level].name} grid", "the grid supply (derived by gridgate)")
            eq.ref(el, "Equipment.EquipmentContainer", level_mrid[level])
        eq.ref(el, "ConductingEquipment.BaseVoltage", base[lay.levels[level].kv])
        first_terminal[key] = terminals(m, key, [n])[0]
    points = {f"{d.name}/{p.name}": p for d in cfg.devices for p in d.points}
    for entry in build_catalog(cfg).values():  # the catalog's mRIDs, not a second derivation of them
        meas = entry.measurement
        path = points[entry.key].measurement.equipment
        el = op.obj(entry.kind, uuid.UUID(meas["mRID"]), meas["name"], f"gridgate point {entry.key} ({entry.protocol})")
        op.lit(el, "cim", "Measurement.measurementType", cgmes_type(entry.measurement_type))
        op.enum(el, "Measurement.phases", f"PhaseCode.{meas['phases']}")
        op.enum(el, "Measurement.unitSymbol", f"UnitSymbol.{meas['unitSymbol']}")
        op.enum(el, "Measurement.unitMultiplier", f"UnitMultiplier.{meas['unitMultiplier']}")
        op.ref(el, "Measurement.PowerSystemResource", uuid.UUID(meas["powerSystemResource"]["mRID"]))
        if path in first_terminal:
            op.ref(el, "Measurement.Terminal", first_terminal[path])
    docs = {"eq": eq.bytes()}
    if split:
        docs["op"] = op.bytes()
    return docs


def _tap_steps(cfg: Config) -> dict[str, tuple[int, int, int]]:
    """(low, high, normal) tap step of each transformer with a TapPosition point, from its signal if it has one."""
    out: dict[str, tuple[int, int, int]] = {}
    for d in cfg.devices:
        for p in d.points:
            if p.measurement.type != "TapPosition":
                continue
            sig = p.signal
            lo = int(getattr(sig, "min", None) or 1)
            hi = int(getattr(sig, "max", None) or 17)
            normal = int(getattr(sig, "initial", None) or (lo + hi) // 2)
            out[p.measurement.equipment] = (lo, hi, normal)
    return out

