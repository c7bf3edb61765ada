"""Build a gridgate site skeleton from a CGMES model: network, points, a proposed device layout.

What is taken from the model: substations, voltage levels (as each bay's ``voltage_kv``),
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

import math
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field

from gateway.cgmes.model import Model, ModelError, Obj
from gateway.cgmes.vocab import (
    FEEDER_ENDS, MEASUREMENT_CLASSES, READ_CLASSES, TERMINALS, UNIT_MULTIPLIERS, UNIT_SYMBOLS, UNSUPPORTED_EQUIPMENT,
    gridgate_type,
)
from gateway.config import KIND_OF_TYPE, MRID_NAMESPACE, UNITS_OF_TYPE, PhaseCode

_PHASES = set(PhaseCode.__args__)  # type: ignore[attr-defined]
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(slots=True)
class ImportResult:
    site: dict  # the site file as plain data (YAML-ready)
    ignored: Counter = field(default_factory=Counter)  # class → count
    notes: list[str] = field(default_factory=list)  # skipped items, each naming the element and mRID


def name_of(raw: str, fallback: str) -> str:
    """A gridgate Name (letters, digits, _ . -, ≤64) from a CIM name."""
    n = _NAME_BAD.sub("_", raw.strip()).strip("_.-")[:64]
    return n if n and n[0].isalnum() else (fallback if not n else f"X{n}"[:64])


def _uuid(o: Obj, res: ImportResult) -> str:
    """The object's mRID as gridgate keeps it: a UUID; other mRIDs (allowed by CIM) map to UUID5 of them, noted."""
    try:
        return str(uuid.UUID(o.mrid))
    except ValueError:
        u = str(uuid.uuid5(MRID_NAMESPACE, f"cim:{o.mrid}"))
        res.notes.append(f"{o.label()}: mRID is not a UUID; gridgate publishes it as {u} (UUID5 of the mRID)")
        return u


def _unique(n: str, used: set[str]) -> str:
    base, i = n, 2
    while n in used:
        n = f"{base[:60]}_{i}"
        i += 1
    used.add(n)
    return n


def build_site(model: Model, substation: str | None = None) -> ImportResult:
    res = ImportResult(site={})
    problems: list[str] = []
    _check(model, problems)
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
        sname = _unique(name_of(s.name, "SUB"), used_subs)
        used_bays: set[str] = set()
        out_bays: list[dict] = []
        bay_of: dict[str, dict] = {}
        # bays of this substation, in document order
        for b in bays:
            vl = levels.get(b.refs.get("Bay.VoltageLevel", ""))
            if vl is None or vl.refs.get("VoltageLevel.Substation") != s.id:
                continue
            bd = {"name": _unique(name_of(b.name, "BAY"), used_bays), "voltage_kv": kv_of_level[vl.id],
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
                    bay_of[key] = {"name": _unique(name_of(base, "BAY"), used_bays), "voltage_kv": kv,
                                   "description": f"{holder.cls} {holder.name} (bay made by gridgate import)", "equipment": []}
                    out_bays.append(bay_of[key])
                bd = bay_of[key]
            elif e.cls in UNSUPPORTED_EQUIPMENT:
                res.notes.append(f"unsupported equipment {e.label()} skipped (gridgate has no {e.cls} type)")
                continue
            used = {x["name"] for x in bd["equipment"]}
            ed = {"name": _unique(name_of(e.name, e.cls[:8]), used), "type": e.cls}
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
            if bd.get("voltage_kv") is None:
                bd.pop("voltage_kv")
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
        sd["bays"] = kept
        sd["mrid"] = _uuid(s, res)
        sub_out.append(sd)
    if not sub_out:
        raise ModelError(["no substation with equipment gridgate supports (" + ", ".join(sorted(TERMINALS)) + ")"])
    for o in model.objects.values():
        if o.cls == "ExternalNetworkInjection" or o.cls == "EnergySource":
            res.notes.append(f"{o.label()}: the grid source; gridgate derives it again on export")
    points = _points(model, eq_path, ends, res, sub_ids)
    res.site = _site(model, sub_out, points, bay_kind, kv_by_path=_kv_by_path(sub_out))
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


def _check(model: Model, problems: list[str]) -> None:
    """Broken references and values gridgate cannot represent, each naming the element and mRID."""
    for o in model.objects.values():
        if o.cls == "Terminal":
            cn = o.refs.get("Terminal.ConnectivityNode")
            if cn is None or model.get(cn) is None:
                problems.append(f"{o.label()} at {o.source}: no ConnectivityNode"
                                + (f" (refers to {cn}, which is not in the model)" if cn else "")
                                + "; gridgate needs the node-breaker topology of the EQ profile")
            ce = o.refs.get("Terminal.ConductingEquipment")
            if ce is None or model.get(ce) is None:
                problems.append(f"{o.label()} at {o.source}: its ConductingEquipment {ce or '(none)'} is not in the model")
        elif o.cls in MEASUREMENT_CLASSES:
            psr = o.refs.get("Measurement.PowerSystemResource")
            if psr is None or model.get(psr) is None:
                problems.append(f"{o.label()} at {o.source}: its PowerSystemResource "
                                + (f"{psr} is not in the model" if psr else "is missing")
                                + "; every Measurement must name the equipment it measures")
            unit = o.refs.get("Measurement.unitSymbol", "UnitSymbol.none").removeprefix("UnitSymbol.")
            if unit not in UNIT_SYMBOLS:
                problems.append(f"{o.label()} at {o.source}: unknown unitSymbol {unit!r}; gridgate knows {', '.join(UNIT_SYMBOLS)}")
            mult = o.refs.get("Measurement.unitMultiplier", "UnitMultiplier.none").removeprefix("UnitMultiplier.")
            if mult not in UNIT_MULTIPLIERS:
                problems.append(f"{o.label()} at {o.source}: unitMultiplier {mult!r} is not supported; use one of {', '.join(UNIT_MULTIPLIERS)}")
        elif o.cls in TERMINALS:
            cont = o.refs.get("Equipment.EquipmentContainer")
            if cont is None or model.get(cont) is None:
                problems.append(f"{o.label()} at {o.source}: " + (f"its EquipmentContainer {cont} is not in the model" if cont else
                                "no Equipment.EquipmentContainer") + "; gridgate places equipment in bays")
        elif o.cls == "Bay":
            vl = model.get(o.refs.get("Bay.VoltageLevel"))
            if vl is None or vl.cls != "VoltageLevel":
                problems.append(f"{o.label()} at {o.source}: no VoltageLevel (Bay.VoltageLevel); gridgate takes the bay's voltage from it")


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
    return {f"{s['name']}/{b['name']}/{e['name']}": b.get("voltage_kv", 11.0) for s in subs for b in s["bays"] for e in b["equipment"]}


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
        if KIND_OF_TYPE[mtype] != m.cls:
            res.notes.append(f"{m.label()} skipped: a {raw_type} is a {KIND_OF_TYPE[mtype]} in gridgate, not a {m.cls}")
            continue
        unit = m.refs.get("Measurement.unitSymbol", "UnitSymbol.none").removeprefix("UnitSymbol.")
        if unit not in UNITS_OF_TYPE[mtype]:
            res.notes.append(f"{m.label()} skipped: unit {unit} does not fit {raw_type} ({', '.join(UNITS_OF_TYPE[mtype])})")
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
        mult = m.refs.get("Measurement.unitMultiplier", "UnitMultiplier.none").removeprefix("UnitMultiplier.")
        if mult != "none":
            meas["multiplier"] = mult
        if phases != "none":
            meas["phases"] = phases
        meas["name"] = m.name or mtype
        meas["mrid"] = _uuid(m, res)
        out.append(meas)
    return out


def _site(model: Model, subs: list[dict], points: list[dict], bay_kind: dict[str, str], kv_by_path: dict[str, float]) -> dict:
    region = next(iter(model.of("SubGeographicalRegion")), None)
    site_name = name_of(region.name if region else subs[0]["name"], "SITE")
    devices: list[dict] = []
    ieds: dict[str, dict] = {}
    rtu = {"name": "rtu1", "kind": "rtu", "protocol": "dnp3",
           "description": "proposed by gridgate import: one RTU for every measurement outside feeder bays",
           "host": "127.0.0.1", "port": 20000, "poll_interval": "5s", "timeout": "2s", "points": []}
    counters: Counter = Counter()
    for meas in points:
        bay = meas["equipment"].rsplit("/", 1)[0]
        kv = kv_by_path.get(meas["equipment"], 11.0)
        if bay_kind.get(bay) == "feeder":
            dev = ieds.get(bay)
            if dev is None:
                ied = name_of(bay.replace("/", "_"), "IED")[:50]
                dev = ieds[bay] = {"name": _unique(f"ied-{ied}".lower(), {d["name"] for d in ieds.values()}),
                                   "kind": "ied", "protocol": "iec61850",
                                   "description": f"proposed by gridgate import: protection/control IED of bay {bay}",
                                   "host": "127.0.0.1", "port": 10201 + len(ieds), "poll_interval": "2s",
                                   "timeout": "2s", "iec61850": {"ied_name": ied}, "points": []}
            addr = _mms_address(dev, meas, counters)
        else:
            dev = rtu
            addr = _dnp3_address(meas, counters)
        used = {p["name"] for p in dev["points"]}
        pname = _unique(name_of(meas["name"], "P"), used)
        if meas["name"] == pname:
            meas = {k: v for k, v in meas.items() if k != "name"}
        dev["points"].append({"name": pname, **addr, "measurement": meas, "signal": _signal(meas, kv)})
    devices = [d for d in [rtu, *ieds.values()] if d["points"]]
    for sd in subs:  # name and mrid first: the file reads top-down
        for bd in sd["bays"]:
            bd["equipment"] = [_first(ed) for ed in bd["equipment"]]
        sd["bays"] = [_first(bd) for bd in sd["bays"]]
    subs = [_first(sd) for sd in subs]
    site = {
        "site": {"name": site_name, "description": region.lits.get("IdentifiedObject.description", "") if region else ""},
        "gateway": {"id": f"{site_name[:60].lower()}-gw"[:64]},
        "substations": subs,
        "devices": devices,
    }
    if not site["site"]["description"]:
        site["site"].pop("description")
    geo = model.get(region.refs.get("SubGeographicalRegion.Region")) if region else None
    if geo is not None and geo.name:
        site["site"]["operator"] = geo.name
    return site


def _first(d: dict) -> dict:
    return {k: d[k] for k in ("name", "mrid") if k in d} | {k: v for k, v in d.items() if k not in ("name", "mrid")}


def _dnp3_address(meas: dict, counters: Counter) -> dict:
    t = meas["type"]
    group = {"SwitchPosition": "double_binary", "ProtectionStart": "binary", "ProtectionOperate": "binary",
             "ActiveEnergy": "counter", "ReactiveEnergy": "counter"}.get(t, "analog")
    counters[("rtu", group)] += 1
    return {"group": group, "index": counters[("rtu", group)] - 1}


def _mms_address(dev: dict, meas: dict, counters: Counter) -> dict:
    t = meas["type"]
    ld = f"{dev['iec61850']['ied_name']}PROT"
    if t == "SwitchPosition":
        ln, do, da, fc = "XCBR", "Pos", "stVal", "ST"
    elif t in ("ProtectionStart", "ProtectionOperate"):
        ln, do, da, fc = "GGIO", "Ind", "stVal", "ST"
    elif t == "TapPosition":
        ln, do, da, fc = "GGIO", "IntIn", "stVal", "ST"
    elif KIND_OF_TYPE[t] == "Accumulator":
        ln, do, da, fc = "GGIO", "Cnt", "actVal", "ST"
    else:
        ln, do, da, fc = "GGIO", "AnIn", "mag.f", "MX"
    counters[(dev["name"], ln, do)] += 1
    n = counters[(dev["name"], ln, do)]
    ref = f"{ld}/{ln}{n}.{do}.{da}" if ln == "XCBR" else f"{ld}/{ln}1.{do}{n}.{da}"
    return {"reference": ref, "fc": fc}


def _signal(meas: dict, kv: float) -> dict:
    """A plausible constant for the emulator, in the measurement's unit and multiplier."""
    t = meas["type"]
    div = {"none": 1, "k": 1e3, "M": 1e6}[meas.get("multiplier", "none")]
    if t == "SwitchPosition":
        return {"kind": "discrete", "initial": 2}
    if t in ("ProtectionStart", "ProtectionOperate"):
        return {"kind": "discrete", "initial": 0, "min": 0, "max": 1}
    if t == "TapPosition":
        return {"kind": "discrete", "initial": 9, "min": 1, "max": 17}
    value = {"Voltage": kv * 1e3, "PhaseVoltage": kv * 1e3 / math.sqrt(3), "LineCurrent": 100.0, "Frequency": 50.0,
             "ThreePhaseActivePower": 1e6, "ThreePhaseReactivePower": 2e5, "ThreePhasePower": 1.02e6,
             "Angle": 0.0, "ActiveEnergy": 1e9, "ReactiveEnergy": 2e8}[t]
    return {"kind": "constant", "value": round(value / div, 3)}
