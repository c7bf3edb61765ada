"""Checks of a CGMES model before import: broken references and values gridgate cannot represent.

Each problem is one line naming the element, its name, its mRID and where it is (file:line).
"""

from __future__ import annotations

from gateway.cgmes.model import Model
from gateway.cgmes.vocab import (
    CIM_UNIT_MULTIPLIERS,
    CIM_UNIT_SYMBOLS,
    MEASUREMENT_CLASSES,
    TERMINALS,
    UNIT_MULTIPLIERS,
    UNIT_SYMBOLS,
)


def check(model: Model, problems: list[str]) -> None:
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
            if unit not in CIM_UNIT_SYMBOLS:
                problems.append(f"{o.label()} at {o.source}: unknown unitSymbol {unit!r} (not a CIM UnitSymbol);"
                                f" gridgate's measurements use {', '.join(UNIT_SYMBOLS)}")
            mult = o.refs.get("Measurement.unitMultiplier", "UnitMultiplier.none").removeprefix("UnitMultiplier.")
            if mult not in CIM_UNIT_MULTIPLIERS:
                problems.append(f"{o.label()} at {o.source}: unknown unitMultiplier {mult!r} (not a CIM UnitMultiplier);"
                                f" gridgate's measurements use {', '.join(UNIT_MULTIPLIERS)}")
        elif o.cls in TERMINALS:
            cont = o.refs.get("Equipment.EquipmentContainer")
            if cont is None or model.get(cont) is None:
                problems.append(f"{o.label()} at {o.source}: " + (f"its EquipmentContainer {cont} is not in the model" if cont else
                                "no Equipment.EquipmentContainer") + "; gridgate places equipment in bays")
        elif o.cls == "VoltageLevel":
            bv = model.get(o.refs.get("VoltageLevel.BaseVoltage"))
            try:
                kv = float(bv.lits["BaseVoltage.nominalVoltage"]) if bv is not None else None
            except (KeyError, ValueError):
                kv = None
            if kv is None or kv <= 0:
                problems.append(f"{o.label()} at {o.source}: no BaseVoltage with a nominalVoltage"
                                + (f" ({bv.label()} has none)" if bv is not None else "")
                                + "; gridgate takes the level's voltage from it")
        elif o.cls == "Bay":
            vl = model.get(o.refs.get("Bay.VoltageLevel"))
            if vl is None or vl.cls != "VoltageLevel":
                problems.append(f"{o.label()} at {o.source}: no VoltageLevel (Bay.VoltageLevel); gridgate takes the bay's voltage from it")
