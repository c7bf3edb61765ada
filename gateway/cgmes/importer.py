"""Build a gridgate site skeleton from a CGMES model: network, points, a proposed device layout.

What is taken from the model: substations, voltage levels (name, base voltage, limits, mRID;
each bay names its ``voltage_level``),
bays, supported equipment with their mRIDs, and every Measurement with its mRID, type, unit,
multiplier and phases. What is proposed (edit it): one IEC 61850 IED per feeder bay (a bay
with an ACLineSegment or EnergyConsumer), one DNP3 RTU for every other measurement, protocol
addresses numbered in order, and emulator signals with plausible constant values.

Classes gridgate does not use are reported as ignored; equipment gridgate has no type for is
reported by name and mRID and skipped with its measurements. Broken references (a
Measurement without its PSR, a Terminal without a ConnectivityNode), duplicate mRIDs and
unknown unit symbols are errors (:class:`~gateway.cgmes.model.ModelError`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from gateway.cgmes.checks import check
from gateway.cgmes.layout import propose_site
from gateway.cgmes.model import Model, ModelError, Obj
from gateway.cgmes.names import name_of, unique
from gateway.cgmes.vocab import (
    FEEDER_ENDS,
    MEASUREMENT_CLASSES,
    READ_CLASSES,
    TERMINALS,
    UNIT_MULTIPLIERS,
    UNSUPPORTED_EQUIPMENT,
    gridgate_type,
)
from gateway.site.model import KIND_OF_TYPE, MRID_NAMESPACE, UNITS_OF_TYPE, PhaseCode, kv_name

_PHASES = set(PhaseCode.__args__)  # type: ignore[attr-defined]


@dataclass(slots=True)
class ImportResult:
    site: dict  # the site file as plain data (YAML-ready)
    ignored: Counter = field(default_factory=Counter)  # class → count
    notes: list[str] = field(default_factory=list)  # skipped items, each naming the element and mRID


def _uuid(o: Obj, res: ImportResult | None) -> str:
    """The object's mRID as gridgate keeps it: a UUID; other mRIDs (allowed by CIM) map to UUID5 of them, noted."""
    try:
        return str(uuid.UUID(o.mrid))
    except ValueError:
        u = str(uuid.uuid5(MRID_NAMESPACE, f"cim:{o.mrid}"))
        if res is not None:
            res.notes.append(f"{o.label()}: mRID is not a UUID; gridgate publishes it as {u} (UUID5 of the mRID)")
        return u


def build_site(model: Model, substation: str | None = None) -> ImportResult:
    res = ImportResult(site={})
    problems: list[str] = []
    check(model, problems)
    if problems:
        raise ModelError(problems)
    for o in model.objects.values():
        if o.cls not in READ_CLASSES and o.cls not in UNSUPPORTED_EQUIPMENT:
            res.ignored[o.cls.split("}")[-1] if o.cls.startswith("{") else o.cls] += 1
    subs = model.of("Substation")
    if substation is not None:
        subs = [s for s in subs if s.name == substation or s.mrid == substation]
        if not subs:
            names = ", ".join(sorted(s.name for s in model.of("Substation"))) or "none"
            raise ModelError([f"no Substation named {substation!r} in the model (it has: {names})"])
    if not subs:
        raise ModelError(["the model has no Substation; gridgate sites are built from substations"])
    levels = {o.id: o for o in model.of("VoltageLevel")}
    kv_of_level = {vid: _kv(model, v) for vid, v in levels.items()}
    bays = model.of("Bay")
    equipment = [o for o in model.objects.values() if o.cls in TERMINALS or o.cls in UNSUPPORTED_EQUIPMENT]
    bay_ids = {b.id for b in model.of("Bay")}
    # a grid infeed kept in a Bay is the site's own source equipment (gridgate's EnergySource); one held by a
    # VoltageLevel is the derived one gridgate writes again on export
    infeeds = [o for o in model.objects.values() if o.cls in ("ExternalNetworkInjection", "EnergySource")
               and o.refs.get("Equipment.EquipmentContainer", "") in bay_ids]
    equipment += infeeds
    ends = _transformer_ends(model)
    terminals_of: dict[str, list[Obj]] = {}
    for t in model.of("Terminal"):
        terminals_of.setdefault(t.refs.get("Terminal.ConductingEquipment", ""), []).append(t)
        terminals_of.setdefault("node:" + t.refs.get("Terminal.ConnectivityNode", ""), []).append(t)

    sub_out: list[dict] = []
    eq_path: dict[str, str] = {}  # equipment id → SUB/BAY/EQ
    bay_kind: dict[str, str] = {}  # SUB/BAY → feeder | other
    used_subs: set[str] = set()
    sub_ids = {s.id for s in subs}
    for s in subs:
        sname = unique(name_of(s.name, "SUB"), used_subs)
        used_bays: set[str] = set()
        out_bays: list[dict] = []
        bay_of: dict[str, dict] = {}
        level_out = _levels(s, levels.values(), kv_of_level, res)
        level_name = {vid: ld["name"] for vid, ld in level_out.items()}
        # bays of this substation, in document order
        for b in bays:
            vl = levels.get(b.refs.get("Bay.VoltageLevel", ""))
            if vl is None or vl.refs.get("VoltageLevel.Substation") != s.id:
                continue
            bd = {"name": unique(name_of(b.name, "BAY"), used_bays), "voltage_level": level_name.get(vl.id),
                  "voltage_kv": kv_of_level[vl.id],
                  "description": b.lits.get("IdentifiedObject.description", ""), "equipment": [], "mrid": _uuid(b, res)}
            bay_of[b.id] = bd
            out_bays.append(bd)
        for e in equipment:
            cont = e.refs.get("Equipment.EquipmentContainer", "")
            if e.cls == "PowerTransformer" and cont not in bay_of:
                cont = _bay_beside(model, e, ends, terminals_of, bay_of) or cont
            bd = bay_of.get(cont)
            if bd is None:  # directly in a VoltageLevel or the Substation: a bay of its own
                holder = levels.get(cont) or model.get(cont)
                if holder is None:
                    continue
                owner = holder.refs.get("VoltageLevel.Substation") if holder.cls == "VoltageLevel" else holder.id
                if owner != s.id:
                    continue
                if e.cls in UNSUPPORTED_EQUIPMENT:
                    res.notes.append(f"unsupported equipment {e.label()} skipped (gridgate has no {e.cls} type)")
                    continue
                if e.cls not in TERMINALS:
                    continue
                kv = kv_of_level.get(cont) or _equipment_kv(model, e, ends)
                key = f"{cont}/{e.cls if e.cls == 'BusbarSection' else e.id}"
                if key not in bay_of:
                    base = holder.name if e.cls == "BusbarSection" else e.name
                    vname = level_name.get(cont) or _level_for(level_out, kv, s, res)
                    bay_of[key] = {"name": unique(name_of(base, "BAY"), used_bays), "voltage_level": vname, "voltage_kv": kv,
                                   "description": f"{holder.cls} {holder.name} (bay made by gridgate import)", "equipment": []}
                    out_bays.append(bay_of[key])
                bd = bay_of[key]
            elif e.cls in UNSUPPORTED_EQUIPMENT:
                res.notes.append(f"unsupported equipment {e.label()} skipped (gridgate has no {e.cls} type)")
                continue
            used = {x["name"] for x in bd["equipment"]}
            cls = "EnergySource" if e in infeeds else e.cls
            ed = {"name": unique(name_of(e.name, cls[:8]), used), "type": cls}
            if desc := e.lits.get("IdentifiedObject.description", ""):
                ed["description"] = desc
            ed["mrid"] = _uuid(e, res)
            bd["equipment"].append(ed)
            eq_path[e.id] = f"{sname}/{bd['name']}/{ed['name']}"
        kept = []
        for bd in out_bays:
            if not bd["equipment"]:
                res.notes.append(f"bay {bd['name']} of substation {sname} has no supported equipment; left out")
                continue
            if bd.get("voltage_level") is None:
                bd.pop("voltage_level")
            if not bd["description"]:
                bd.pop("description")
            kept.append(bd)
            bay_kind[f"{sname}/{bd['name']}"] = "feeder" if any(x["type"] in FEEDER_ENDS for x in bd["equipment"]) else "other"
        if not kept:
            res.notes.append(f"substation {s.label()} has no supported equipment; left out")
            continue
        sd = {"name": sname}
        if desc := s.lits.get("IdentifiedObject.description", ""):
            sd["description"] = desc
        sd["voltage_levels"] = list(level_out.values())
        sd["bays"] = kept
        sd["mrid"] = _uuid(s, res)
        sub_out.append(sd)
    if not sub_out:
        raise ModelError(["no substation with equipment gridgate supports (" + ", ".join(sorted(TERMINALS)) + ")"])
    for o in model.objects.values():
        if (o.cls == "ExternalNetworkInjection" or o.cls == "EnergySource") and o not in infeeds:
            res.notes.append(f"{o.label()}: the grid source; gridgate derives it again on export")
    points = _points(model, eq_path, ends, res, sub_ids)
    kv_by_path = _kv_by_path(sub_out)
    for sd in sub_out:  # the bay's voltage is its level's
        for bd in sd["bays"]:
            if "voltage_level" in bd:
                bd.pop("voltage_kv", None)
            elif bd.get("voltage_kv") is None:
                bd.pop("voltage_kv", None)
    res.site = propose_site(model, sub_out, points, bay_kind, kv_by_path=kv_by_path)
    if bvs := _base_voltages(model, levels, sub_out, res):
        res.site["site"]["base_voltages"] = bvs
    _compare_topology(model, res, eq_path)
    return res


def _compare_topology(model: Model, res: ImportResult, eq_path: dict[str, str]) -> None:
    """Note where the model's connectivity differs from what gridgate derives from the bays.

    The site file has no explicit topology (yet): on export gridgate lays bays out by its rules
    (:mod:`gateway.cgmes.topology`), so a foreign model may come back connected differently.
    """
    from gateway.cgmes.topology import TopologyError, derive
    from gateway.config import Config

    at_node: dict[str, set[str]] = {}
    for t in model.of("Terminal"):
        path = eq_path.get(t.refs.get("Terminal.ConductingEquipment", ""))
        if path is not None:
            at_node.setdefault(t.refs["Terminal.ConnectivityNode"], set()).add(path)
    try:
        lay = derive(Config.model_validate(res.site))
    except (TopologyError, ValueError):
        return
    derived_at: dict[str, set[str]] = {}
    for path, nodes in lay.terminals.items():
        for n in nodes:
            derived_at.setdefault(n, set()).add(path)
    groups = lambda nodes: {frozenset(g) for g in nodes.values() if len(g) > 1}  # noqa: E731 - who meets at a node
    have, get = groups(at_node), groups(derived_at)
    missing = sorted(" + ".join(sorted(g)) for g in have - get)
    extra = sorted(" + ".join(sorted(g)) for g in get - have)
    if missing or extra:
        res.notes.append(
            "topology: the site file has no explicit connectivity, and gridgate's export derives it from the bays;"
            f" for this model that differs: {len(missing)} node(s) of the model not derived"
            f" ({'; '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}), {len(extra)} derived node(s) not in the model"
            f" ({'; '.join(extra[:3])}{', ...' if len(extra) > 3 else ''})"
        )


def _levels(s: Obj, levels, kv_of_level: dict[str, float | None], res: ImportResult) -> dict[str, dict]:
    """The substation's VoltageLevels as the site file declares them (name, base voltage, limits, mRID), by id."""
    out: dict[str, dict] = {}
    used: set[str] = set()
    for vl in levels:
        if vl.refs.get("VoltageLevel.Substation") != s.id:
            continue
        kv = kv_of_level[vl.id]
        if kv is None:  # checks() requires a BaseVoltage; a nominalVoltage that is not a number ends here
            res.notes.append(f"{vl.label()}: no usable BaseVoltage.nominalVoltage; its bays are left out")
            continue
        ld: dict = {"name": unique(name_of(vl.name, kv_name(kv)), used), "mrid": _uuid(vl, res), "base_voltage_kv": kv}
        for prop, key in (("highVoltageLimit", "high_limit_kv"), ("lowVoltageLimit", "low_limit_kv")):
            v = _float(vl.lits.get(f"VoltageLevel.{prop}"))
            ok = v is not None and v > 0 and (v >= kv if key == "high_limit_kv" else v <= kv)
            if ok:
                ld[key] = v
            elif v is not None:
                res.notes.append(f"{vl.label()}: {prop} {v:g} kV does not fit its base voltage {kv:g} kV; left out")
        if desc := vl.lits.get("IdentifiedObject.description", ""):
            ld["description"] = desc
        out[vl.id] = ld
    return out


def _base_voltages(model: Model, levels: dict[str, Obj], subs: list[dict], res: ImportResult) -> list[dict]:
    """The BaseVoltages of the imported levels (name, nominal voltage, mRID), one per voltage, highest first."""
    used = {str(ld["mrid"]) for sd in subs for ld in sd["voltage_levels"] if "mrid" in ld}
    out: dict[float, dict] = {}
    for vl in levels.values():
        bv = model.get(vl.refs.get("VoltageLevel.BaseVoltage"))
        kv = _float(bv.lits.get("BaseVoltage.nominalVoltage")) if bv is not None else None
        if bv is None or kv is None or _uuid(vl, None) not in used or kv in out:
            continue
        out[kv] = {"name": name_of(bv.name, kv_name(kv)), "nominal_kv": kv, "mrid": _uuid(bv, res)}
    return [out[kv] for kv in sorted(out, reverse=True)]


def _level_for(level_out: dict[str, dict], kv: float | None, s: Obj, res: ImportResult) -> str | None:
    """The level of equipment the model keeps directly in its Substation: the one of its voltage, else a new one."""
    if kv is None:
        return None
    for ld in level_out.values():
        if ld["base_voltage_kv"] == kv:
            return ld["name"]
    name = unique(kv_name(kv), {ld["name"] for ld in level_out.values()})
    level_out[f"derived:{kv}"] = {"name": name, "base_voltage_kv": kv}
    res.notes.append(f"substation {s.label()}: no VoltageLevel of {kv:g} kV for equipment held by the substation;"
                     f" voltage level {name} added (without an mRID of the model)")
    return name


def _float(v: str | None) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def _bay_beside(model: Model, tx: Obj, ends: dict[str, list[Obj]], terminals_of: dict[str, list[Obj]], bay_of: dict) -> str | None:
    """The bay whose switchgear feeds a transformer that the model keeps directly in its Substation (common
    in CGMES): the bay of the equipment on the HV end's node, so the transformer and its breaker share a bay."""
    hv = ends.get(tx.id, [None])[0]
    term = hv.refs.get("TransformerEnd.Terminal") if hv is not None else None
    for t in terminals_of.get(tx.id, []):
        if term is not None and t.id != term:
            continue
        for other in terminals_of.get("node:" + t.refs.get("Terminal.ConnectivityNode", ""), []):
            eq = other.refs.get("Terminal.ConductingEquipment")
            if eq != tx.id:
                o = model.get(eq)
                bay = o.refs.get("Equipment.EquipmentContainer") if o is not None else None
                if bay in bay_of:
                    return bay
    return None


def _kv(model: Model, vl: Obj) -> float | None:
    bv = model.get(vl.refs.get("VoltageLevel.BaseVoltage"))
    try:
        return float(bv.lits["BaseVoltage.nominalVoltage"]) if bv else None
    except (KeyError, ValueError):
        return None


def _transformer_ends(model: Model) -> dict[str, list[Obj]]:
    ends: dict[str, list[Obj]] = {}
    for e in model.of("PowerTransformerEnd"):
        ends.setdefault(e.refs.get("PowerTransformerEnd.PowerTransformer", ""), []).append(e)
    for v in ends.values():
        v.sort(key=lambda e: int(e.lits.get("TransformerEnd.endNumber", "9") or 9))
    return ends


def _equipment_kv(model: Model, e: Obj, ends: dict[str, list[Obj]]) -> float | None:
    for end in ends.get(e.id, []):
        for key in ("PowerTransformerEnd.ratedU",):
            if key in end.lits:
                return float(end.lits[key])
    bv = model.get(e.refs.get("ConductingEquipment.BaseVoltage"))
    return float(bv.lits["BaseVoltage.nominalVoltage"]) if bv and "BaseVoltage.nominalVoltage" in bv.lits else None


def _kv_by_path(subs: list[dict]) -> dict[str, float]:
    return {f"{s['name']}/{b['name']}/{e['name']}": b.get("voltage_kv") or 11.0 for s in subs for b in s["bays"] for e in b["equipment"]}


def _points(model: Model, eq_path: dict[str, str], ends: dict[str, list[Obj]], res: ImportResult,
            sub_ids: set[str]) -> list[dict]:
    tap_owner = {}
    for tc in model.of("RatioTapChanger", "PhaseTapChangerLinear", "PhaseTapChangerTabular"):
        end = model.get(tc.refs.get("RatioTapChanger.TransformerEnd") or tc.refs.get("PhaseTapChanger.TransformerEnd"))
        if end is not None:
            tap_owner[tc.id] = end.refs.get("PowerTransformerEnd.PowerTransformer", "")
    out: list[dict] = []
    seen: dict[tuple, str] = {}
    for m in model.of(*MEASUREMENT_CLASSES):
        psr_id = m.refs["Measurement.PowerSystemResource"]
        psr_id = tap_owner.get(psr_id, psr_id)
        path = eq_path.get(psr_id)
        if path is None:
            psr = model.get(psr_id)
            if psr is not None and psr.cls in UNSUPPORTED_EQUIPMENT | READ_CLASSES and psr.cls not in TERMINALS:
                res.notes.append(f"{m.label()} skipped: its PowerSystemResource {psr.label()} is not gridgate equipment")
            elif psr is not None and psr.cls in TERMINALS:
                pass  # equipment of a substation not imported (--substation)
            else:
                res.notes.append(f"{m.label()} skipped: PowerSystemResource {psr.label() if psr else psr_id} is not imported")
            continue
        raw_type = m.lits.get("Measurement.measurementType", "")
        mtype = gridgate_type(raw_type)
        if mtype is None:
            res.notes.append(f"{m.label()} skipped: measurementType {raw_type!r} has no gridgate equivalent")
            continue
        if raw_type == "Voltage":  # IEC 61970-301: a voltage not allocated to a phase; gridgate's v1 Voltage is line-to-line
            res.notes.append(f"{m.label()}: measurementType Voltage kept; gridgate reads it as line-to-line"
                             " (cimMeasurementType and a re-export say LineToLineVoltage)")
        if KIND_OF_TYPE[mtype] != m.cls:
            res.notes.append(f"{m.label()} skipped: a {raw_type} is a {KIND_OF_TYPE[mtype]} in gridgate, not a {m.cls}")
            continue
        unit = m.refs.get("Measurement.unitSymbol", "UnitSymbol.none").removeprefix("UnitSymbol.")
        if unit not in UNITS_OF_TYPE[mtype]:
            res.notes.append(f"{m.label()} skipped: unit {unit} does not fit {raw_type} ({', '.join(UNITS_OF_TYPE[mtype])})")
            continue
        mult = m.refs.get("Measurement.unitMultiplier", "UnitMultiplier.none").removeprefix("UnitMultiplier.")
        if mult not in UNIT_MULTIPLIERS:
            res.notes.append(f"{m.label()} skipped: unitMultiplier {mult} is not one gridgate publishes ({', '.join(UNIT_MULTIPLIERS)})")
            continue
        phases = m.refs.get("Measurement.phases", "PhaseCode.none").removeprefix("PhaseCode.")
        if phases not in _PHASES:
            res.notes.append(f"{m.label()}: phases {phases!r} not supported; published with phases none")
            phases = "none"
        key = (path, mtype, phases)
        if key in seen:
            res.notes.append(f"{m.label()} skipped: {path} already has a {mtype} measurement with phases {phases} ({seen[key]})")
            continue
        seen[key] = m.label()
        meas = {"equipment": path, "type": mtype}
        if mult != "none":
            meas["multiplier"] = mult
        if phases != "none":
            meas["phases"] = phases
        meas["name"] = m.name or mtype
        meas["mrid"] = _uuid(m, res)
        out.append(meas)
    return out
