"""The device layout the import proposes for a site skeleton (documented in the file it writes; edit it).

One IEC 61850 IED per feeder bay (GGIO/XCBR references), one DNP3 RTU for every other
measurement (indexes in order), loopback addresses, and constant/discrete emulator signals
scaled to the bay voltage, so the skeleton runs in ``gridgate demo`` as it is.
"""

from __future__ import annotations

import math
from collections import Counter

from gateway.cgmes.model import Model
from gateway.cgmes.names import name_of, unique
from gateway.site.model import AVC_FLAG_TYPES, KIND_OF_TYPE


def propose_site(model: Model, subs: list[dict], points: list[dict], bay_kind: dict[str, str], kv_by_path: dict[str, float]) -> dict:
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
                dev = ieds[bay] = {"name": unique(f"ied-{ied}".lower(), {d["name"] for d in ieds.values()}),
                                   "kind": "ied", "protocol": "iec61850",
                                   "description": f"proposed by gridgate import: protection/control IED of bay {bay}",
                                   "host": "127.0.0.1", "port": 10201 + len(ieds), "poll_interval": "2s",
                                   "timeout": "2s", "iec61850": {"ied_name": ied}, "points": []}
            addr = _mms_address(dev, meas, counters)
        else:
            dev = rtu
            addr = _dnp3_address(meas, counters)
        used = {p["name"] for p in dev["points"]}
        pname = unique(name_of(meas["name"], "P"), used)
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
    group = ("double_binary" if t == "SwitchPosition" else "binary" if t in _BINARY
             else "counter" if KIND_OF_TYPE[t] == "Accumulator" else "analog")
    counters[("rtu", group)] += 1
    return {"group": group, "index": counters[("rtu", group)] - 1}


def _mms_address(dev: dict, meas: dict, counters: Counter) -> dict:
    t = meas["type"]
    ld = f"{dev['iec61850']['ied_name']}PROT"
    if t == "SwitchPosition":
        ln, do, da, fc = "XCBR", "Pos", "stVal", "ST"
    elif t in _BINARY:
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
    if t in _BINARY:
        return {"kind": "discrete", "initial": 0, "min": 0, "max": 1}
    if t == "TapPosition":
        return {"kind": "discrete", "initial": 9, "min": 1, "max": 17}
    value = _CONSTANT.get(t, 0.0)
    if t in ("Voltage", "LineToLineVoltage"):
        value = kv * 1e3
    elif t in ("PhaseVoltage", "LineToNeutralVoltage", "LineToGroundVoltage"):
        value = kv * 1e3 / math.sqrt(3)
    return {"kind": "constant", "value": round(value / div, 3)}


#: 0/1 Discretes (binary inputs)
_BINARY = ("ProtectionStart", "ProtectionOperate", "LocalOperation", "Automatic") + AVC_FLAG_TYPES
#: plausible constants (SI units) of the other types; 0 for those not listed
_CONSTANT = {"LineCurrent": 100.0, "PhaseCurrent": 100.0, "Current": 100.0, "ThreePhaseCurrent": 100.0, "Frequency": 50.0,
             "ThreePhaseActivePower": 1e6, "ThreePhaseReactivePower": 2e5, "ThreePhasePower": 1.02e6,
             "ThreePhaseApparentPower": 1.02e6, "ActivePower": 3.3e5, "ReactivePower": 6.7e4, "ApparentPower": 3.4e5,
             "PowerFactor": 0.98, "ThreePhasePowerFactor": 0.98, "Temperature": 20.0, "Pressure": 101325.0,
             "ActiveEnergy": 1e9, "ReactiveEnergy": 2e8, "ApparentEnergy": 1.02e9, "OperationCount": 12.0}
