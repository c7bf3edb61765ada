"""The served model of every emulated IED of the example site, walked by an independent MMS client
(every LD, LN, DO, DA and FC read) and checked against IEC 61850-7-4 Ed. 2 mandatory objects and the
legal value ranges of 7-3: nothing missing, nothing illegal, no GOOD value stamped 1970."""

from __future__ import annotations

import os
import re
import time

import pytest

from gateway.config import Config, load_config
from tests.iec61850.browse import Browser, Leaf
from tests.iec61850.support import ROOT, IedProcess
from tests.support.mosquitto import free_port

# 7-4 Ed. 2 mandatory DOs per LN class (written from the standard's tables, independently of the code)
MANDATORY = {
    "LLN0": {"Mod", "Beh", "Health", "NamPlt"},
    "LPHD": {"PhyNam", "PhyHealth", "Proxy"},
    "XCBR": {"Beh", "Loc", "OpCnt", "Pos", "BlkOpn", "BlkCls"},
    "XSWI": {"Beh", "Loc", "OpCnt", "SwTyp", "Pos", "BlkOpn", "BlkCls"},
    "CSWI": {"Beh"},
    "PTOC": {"Beh", "Str", "Op"},
    "MMXU": {"Beh"},
    "MMTR": {"Beh"},
    "GGIO": {"Beh"},
}
# 7-3 CDC: mandatory DAs (by what a DO holds)
CDC_DAS = {
    "stVal": {"q", "t"}, "general": {"q", "t"}, "actVal": {"q", "t", "pulsQty"},
    "mag.f": {"q", "t", "units.SIUnit"}, "cVal.mag.f": {"q", "t", "units.SIUnit"},
}
# legal values (7-3/7-4 enumerations) by DO class name.DA
RANGES = {
    "Mod.stVal": range(1, 6), "Beh.stVal": range(1, 6), "Health.stVal": range(1, 4),
    "PhyHealth.stVal": range(1, 4), "Pos.stVal": range(4), "ctlModel": range(5), "SwTyp.stVal": range(1, 5),
    "dirGeneral": range(4), "units.SIUnit": {1, 5, 9, 29, 33, 38, 61, 63, 65, 72, 73},
    "units.multiplier": {-24, -21, -18, -15, -12, -9, -6, -3, -2, -1, 0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24},
    "db": range(100_001), "zeroDb": range(100_001), "OpCnt.stVal": range(2**31),
}
NON_EMPTY = {"NamPlt.vendor", "NamPlt.swRev", "NamPlt.configRev", "NamPlt.ldNs", "PhyNam.vendor"}
Y2020 = 1577836800.0


def ln_class(ln: str) -> str:
    m = re.match(r"^[A-Za-z0-9]*?(LLN0|[A-Z]{4})\d*$", ln)
    assert m, ln
    return m.group(1)


def site() -> Config:
    base = load_config(os.path.join(ROOT, "configs", "primary-substation.yaml")).model_dump()
    for d in base["devices"]:
        d["port"] = free_port()
    return Config.model_validate(base)


def check(leaves: dict[str, Leaf], fed: set[str]) -> list[str]:
    """Problems of a walked model; ``fed``: DO references the firmware feeds (INVALID until written)."""
    bad: list[str] = []
    dos: dict[str, set[str]] = {}  # LD/LN.DO → DA paths below it
    for ref, leaf in leaves.items():
        ld_ln, _, rest = ref.partition(".")
        do, _, da = rest.partition(".")
        dos.setdefault(f"{ld_ln}.{do}", set()).add(da)
        for key, legal in RANGES.items():
            if (f"{do}.{da}" if "." in key and key.split(".")[0][0].isupper() else da) == key or (
                "." not in key and da.endswith("." + key)
            ) or da == key:
                if leaf.value not in legal:
                    bad.append(f"{ref} = {leaf.value!r}: outside {key} legal range")
        if f"{do}.{da}" in NON_EMPTY and not leaf.value:
            bad.append(f"{ref} is empty")
        if da.endswith("t") and da.split(".")[-1] == "t" and leaf.fc in ("ST", "MX"):
            q = leaves.get(ref[:-1] + "q")
            if leaf.value < Y2020:
                bad.append(f"{ref} = {leaf.value}: 1970-style timestamp (q={q.value if q else None})")
    lns: dict[str, set[str]] = {}
    for do_ref, das in dos.items():
        ld_ln, _, do = do_ref.partition(".")
        lns.setdefault(ld_ln, set()).add(do)
        for d in das:
            seg = d.split(".")
            for leaf_da, needs in CDC_DAS.items():
                n = len(leaf_da.split("."))
                if seg[-n:] != leaf_da.split(".") or (leaf_da == "mag.f" and seg[-3:-2] in (["cVal"], ["instCVal"])):
                    continue
                h = ".".join(seg[:-n]) + "." if len(seg) > n else ""  # "" for the DO, "phsA." for a WYE phase
                for need in needs:
                    if h + need not in das:
                        bad.append(f"{do_ref}.{h}{need} missing (7-3 mandatory with {leaf_da})")
    for ld_ln, have in lns.items():
        missing = MANDATORY.get(ln_class(ld_ln.split("/")[1]), set()) - have
        if missing:
            bad.append(f"{ld_ln}: mandatory {sorted(missing)} missing")
    for ref, leaf in leaves.items():
        if ref.endswith(".q") and leaf.fc in ("ST", "MX"):
            do_ref = ref[:-2]
            good = (leaf.value & 0x3) == 0
            if any(do_ref == f or do_ref.startswith(f + ".") for f in fed) and good:
                bad.append(f"{ref}: GOOD before the firmware wrote it")
    return bad


@pytest.mark.parametrize("idx", range(6))
def test_served_model_of_each_site_ied_conforms(idx: int):
    cfg = site()
    ieds = [d for d in cfg.devices if d.protocol == "iec61850"]
    assert len(ieds) == 6
    dev = ieds[idx]
    fed = {p.reference.split(".")[0] + "." + p.reference.split(".")[1] for p in dev.points}
    with IedProcess(dev) as ied, Browser("127.0.0.1", dev.port) as b:
        leaves = b.walk()
        assert len(leaves) > 150
        assert check(leaves, fed) == []
        # NamPlt as a real IED fills it
        ld = b.lds()[0]
        assert leaves[f"{ld}/LLN0.NamPlt.vendor"].value == "gridgate"
        assert leaves[f"{ld}/LLN0.NamPlt.configRev"].value
        # after the firmware writes, fed data is GOOD with the firmware's timestamp
        pts = {p.name: p for p in dev.points}
        ts = ied.update("P", 1234.0)
        ref = pts["P"].reference.rsplit(".", 2)[0]
        assert b.read(f"{ref}.q", "MX") == 0
        assert b.read(f"{ref}.t", "MX") == pytest.approx(ts, abs=1e-3)
        # units: served value × 10^multiplier is the SI value of the CIM value
        mag = b.read(pts["P"].reference, "MX")
        mult = b.read(f"{ref}.units.multiplier", "CF")
        assert b.read(f"{ref}.units.SIUnit", "CF") == 38  # W
        cim_exp = {"none": 0, "k": 3, "M": 6}[pts["P"].measurement.multiplier]
        assert mag * 10**mult == pytest.approx(1234.0 * 10**cim_exp, rel=1e-6)


def test_check_finds_the_problems_it_is_for():
    """The checker itself: each class of defect the issue names is reported."""
    good = {
        "L/LLN0.Mod.stVal": Leaf("L/LLN0.Mod.stVal", "ST", 1),
        "L/LLN0.Mod.q": Leaf("L/LLN0.Mod.q", "ST", 0),
        "L/LLN0.Mod.t": Leaf("L/LLN0.Mod.t", "ST", time.time()),
    }
    assert any("mandatory" in x for x in check(good, set()))  # Beh, Health, NamPlt missing
    bad = dict(good)
    bad["L/LLN0.Mod.stVal"] = Leaf("L/LLN0.Mod.stVal", "ST", 0)
    assert any("Mod.stVal = 0" in x for x in check(bad, set()))
    bad = dict(good)
    bad["L/LLN0.Mod.t"] = Leaf("L/LLN0.Mod.t", "ST", 0.0)
    assert any("1970" in x for x in check(bad, set()))
    assert any("GOOD before" in x for x in check(good, {"L/LLN0.Mod"}))
    mv = {"L/MMXU1.TotW.mag.f": Leaf("L/MMXU1.TotW.mag.f", "MX", 1.0)}
    assert any("units.SIUnit missing" in x for x in check(mv, set()))


def test_other_ln_classes_conform():
    """A bay with a disconnector (XSWI), a trip conditioning LN (PTRC), generic I/O (GGIO) and
    phase-to-phase voltages (DEL): mandatory objects, legal values, units, nothing GOOD at 1970."""
    from gateway.protocols.iec61850.config import Iec61850Device
    from tests.iec61850.support import bay_points

    eq = "S1/F1/CB1"
    pts = bay_points("F1PROT") + [
        {"name": "DS", "reference": "F1PROT/XSWI1.Pos.stVal", "fc": "ST", "measurement": {"equipment": eq, "type": "SwitchPosition"}},
        {"name": "Trip", "reference": "F1PROT/PTRC1.Tr.general", "fc": "ST", "measurement": {"equipment": eq, "type": "ProtectionOperate"}},
        {"name": "Alarm", "reference": "F1PROT/GGIO1.Ind1.stVal", "fc": "ST", "measurement": {"equipment": eq, "type": "ProtectionStart"}},
        {"name": "Vab", "reference": "F1PROT/MMXU1.PPV.phsAB.cVal.mag.f", "scale": 1000,
         "measurement": {"equipment": eq, "type": "Voltage", "phases": "AB", "multiplier": "k"}},
        {"name": "Aux", "reference": "F1PROT/GGIO1.AnIn1.mag.f", "measurement": {"equipment": eq, "type": "Voltage", "name": "Aux"}},
    ]
    dev = Iec61850Device.model_validate({"name": "F1", "kind": "ied", "protocol": "iec61850", "port": free_port(),
                                         "points": pts})
    fed = {p.reference.split(".")[0] + "." + p.reference.split(".")[1] for p in dev.points}
    with IedProcess(dev) as ied, Browser("127.0.0.1", dev.port) as b:
        leaves = b.walk()
        assert check(leaves, fed) == []
        assert leaves["F1PROT/XSWI1.SwTyp.stVal"].value == 2  # disconnector
        assert leaves["F1PROT/PTRC1.Beh.stVal"].value == 1
        assert leaves["F1PROT/MMXU1.PPV.phsAB.units.SIUnit"].value == 29
        assert leaves["F1PROT/MMXU1.PPV.phsAB.units.multiplier"].value == 6  # kV with scale 1000: served in MV
        assert leaves["F1PROT/GGIO1.AnIn1.units.SIUnit"].value == 29
        ied.update("DS", 1)
        ied.update("DS", 2)
        assert b.read("F1PROT/XSWI1.OpCnt.stVal", "ST") == 1
