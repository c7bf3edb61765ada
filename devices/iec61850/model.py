"""Build a libiec61850 data model (LDs, LNs, CDCs, data sets, RCBs) from a device's points.

Each MmsPoint.reference names a data attribute; the LN class and DO name choose the CDC
(MMXU.TotW → MV, MMXU.PhV → WYE, XCBR.Pos → DPC, ...). The standard LNs of a feeder-bay
protection IED are added to every LD so the model looks like a real one even when the
config maps only a few points. Data sets are one FCD per referenced DO, at most
``DATASET_LIMIT`` entries each, and every data set gets ``brcb_instances`` buffered and
``urcb_instances`` unbuffered RCBs in LLN0 (default two each), so several clients can each own one.
"""

from __future__ import annotations

import ctypes as C
import re
from dataclasses import dataclass, field

from devices.iec61850.conform import (
    BAY_LNS,
    LD_NS,
    MANDATORY,
    SW_REV,
    VENDOR,
    Analogue,
    UnitError,
    analogue,
    counter_units,
    own_value,
)
from devices.iec61850.goose import add_gocb, goose_entries
from gateway.protocols.iec61850.config import Iec61850Device, MmsPoint
from gateway.protocols.iec61850.libiec import CTL_DIRECT_NORMAL, CTL_SBO_ENHANCED, lib

#: libiec61850 gets disproportionately slow above ~200 report entries per data set
DATASET_LIMIT = 100
CTL_HAS_CANCEL = 16
INTEGRITY_MS = 60_000  # every value re-sent once a minute (reason integrity), also a sign of life
BUF_TM_MS = 5  # a burst (every value at once) goes out as one report, not one per value: p99 burst latency 274 → 40-57 ms (bench_iec61850, 200 points)
TRG_OPS = 1 | 2 | 8 | 16  # dchg | qchg | integrity | GI
OPT_FLDS = 1 | 2 | 4 | 8 | 32 | 64 | 128  # seqNum time reason dataSet bufOvfl entryID confRev


class ModelError(ValueError):
    """A point the generated model cannot represent; the message names the point and the fix."""


# (LN class, DO) → CDC; the fallback looks at the first DA name.
_CDC_BY_DO = {
    ("MMXU", "TotW"): "MV", ("MMXU", "TotVAr"): "MV", ("MMXU", "TotVA"): "MV", ("MMXU", "TotPF"): "MV",
    ("MMXU", "Hz"): "MV", ("MMXU", "PhV"): "WYE", ("MMXU", "A"): "WYE", ("MMXU", "W"): "WYE",
    ("MMXU", "VAr"): "WYE", ("MMXU", "VA"): "WYE", ("MMXU", "PF"): "WYE", ("MMXU", "PPV"): "DEL",
    ("MMTR", "TotWh"): "BCR", ("MMTR", "TotVArh"): "BCR", ("MMTR", "SupWh"): "BCR", ("MMTR", "DmdWh"): "BCR",
    ("XCBR", "Pos"): "DPC", ("XSWI", "Pos"): "DPC", ("CSWI", "Pos"): "DPC", ("XCBR", "Loc"): "SPS",
    ("XCBR", "OpCnt"): "INS", ("XSWI", "OpCnt"): "INS", ("XCBR", "CBOpCap"): "ENS",
    ("PTOC", "Op"): "ACT", ("PTOC", "Str"): "ACD", ("PIOC", "Op"): "ACT", ("PIOC", "Str"): "ACD",
    ("PTRC", "Tr"): "ACT", ("PTRC", "Op"): "ACT", ("PTRC", "Str"): "ACD",
    ("LLN0", "Beh"): "ENS", ("LLN0", "Health"): "ENS", ("LLN0", "NamPlt"): "LPL",
    ("LPHD", "PhyNam"): "DPL", ("LPHD", "PhyHealth"): "ENS", ("LPHD", "Proxy"): "SPS",
    ("YLTC", "TapPos"): "INS", ("ATCC", "TapChg"): "INS",
    ("XCBR", "BlkOpn"): "SPC", ("XCBR", "BlkCls"): "SPC", ("XSWI", "BlkOpn"): "SPC", ("XSWI", "BlkCls"): "SPC",
    ("XSWI", "SwTyp"): "ENS", ("LLN0", "Mod"): "ENC", ("GGIO", "Beh"): "ENS",
}
_CDC_BY_PREFIX = {"Ind": "SPS", "AnIn": "MV", "SPCSO": "SPC", "IntIn": "INS", "Alm": "SPS", "Cnt": "BCR"}
_CDC_BY_DA = {"mag": "MV", "cVal": "CMV", "actVal": "BCR", "general": "ACD"}
_CONTROLLABLE = {"DPC", "SPC"}
_PHASED = {"WYE": "cVal", "DEL": "cVal"}

@dataclass(frozen=True)
class Ref:
    """A parsed object reference LD/LN.DO[.SDO][.DA...]."""

    ld: str
    ln: str
    do: str
    rest: tuple[str, ...]

    @property
    def ln_class(self) -> str:
        m = re.match(r"^(?:[A-Za-z0-9]*?)(LLN0|[A-Z]{4})(\d*)$", self.ln)
        return m.group(1) if m else self.ln

    @property
    def do_ref(self) -> str:
        return f"{self.ld}/{self.ln}.{self.do}"


def parse_ref(reference: str) -> Ref:
    ld, _, rest = reference.partition("/")
    parts = rest.split(".")
    if len(parts) < 2 or any(not p for p in parts):
        raise ModelError(f"reference {reference!r}: expected LD/LN.DO[.DA], e.g. F1PROT/MMXU1.TotW.mag.f")
    return Ref(ld, parts[0], parts[1], tuple(parts[2:]))


def cdc_of(r: Ref) -> str | None:
    c = _CDC_BY_DO.get((r.ln_class, r.do))
    if c:
        return c
    base = re.sub(r"\d+$", "", r.do)
    if r.ln_class == "GGIO" and base in _CDC_BY_PREFIX:
        return _CDC_BY_PREFIX[base]
    if r.rest:
        return _CDC_BY_DA.get(r.rest[0]) or ("SPS" if r.rest[0] == "stVal" else None)
    return None


def ctl_model(p: MmsPoint | None) -> int:
    """Direct-normal when the point's command policy says direct, else SBO with enhanced security."""
    if p is not None and p.command is not None and p.command.mode == "direct":
        return CTL_DIRECT_NORMAL
    return CTL_SBO_ENHANCED


@dataclass
class Plan:
    """What to build: per LD, per LN, the DO → (CDC, ctlModel) and the data sets."""

    ied_name: str
    lds: dict[str, dict[str, dict[str, tuple[str, int]]]] = field(default_factory=dict)
    datasets: dict[str, list[list[tuple[str, str, str]]]] = field(default_factory=dict)  # ld → chunks of (ln, fc, do)
    points: dict[str, list[MmsPoint]] = field(default_factory=dict)  # DO reference → the points that feed it
    subs: dict[str, list[str]] = field(default_factory=dict)  # WYE/DEL reference → the fed phases (phsA, ...)
    own: set[str] = field(default_factory=set)  # DO references whose value the IED itself sets (good from start)
    config_rev: str = "1"
    goose: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # ld → GOOSE data-set entries
    rcb_instances: tuple[int, int] = (2, 2)  # (buffered, unbuffered) RCB instances per data set


def plan(device: Iec61850Device) -> Plan:
    """Check every point against the generated model and decide its structure (no C calls)."""
    ied = device.iec61850.ied_name or device.name
    opts = device.iec61850
    pl = Plan(ied, rcb_instances=(opts.rcb_instances(True), opts.rcb_instances(False)))
    errors: list[str] = []
    fcds: dict[str, list[tuple[str, str, str]]] = {}
    for i, p in enumerate(device.points):
        where = f"devices[{device.name}].points[{i}] ({p.name})"
        try:
            r = parse_ref(p.reference)
        except ModelError as e:
            errors.append(f"{where}: {e}")
            continue
        if not r.ld.startswith(ied) or r.ld == ied:
            errors.append(
                f"{where}: logical device {r.ld!r} must be the IED name {ied!r} plus an LD instance, e.g. {ied}PROT;"
                " fix the reference or iec61850.ied_name"
            )
            continue
        cdc = cdc_of(r)
        if cdc is None:
            errors.append(
                f"{where}: no common data class known for {r.ln_class}.{r.do} ({p.reference}); use a standard"
                " LN/DO (MMXU.TotW, XCBR.Pos, GGIO.AnIn1, ...) or serve your own model with iec61850.scl"
            )
            continue
        if not r.rest:
            errors.append(f"{where}: {p.reference} names a data object; name its attribute, e.g. {p.reference}.stVal")
            continue
        lns = pl.lds.setdefault(r.ld, {})
        dos = lns.setdefault(r.ln, {})
        prev = dos.get(r.do)
        ctl = ctl_model(p) if cdc in _CONTROLLABLE else 0
        if prev and prev[1] and ctl and prev[1] != ctl:
            errors.append(f"{where}: {r.do_ref} is already configured with a different command mode")
        dos[r.do] = (cdc, max(ctl, prev[1] if prev else 0))
        pl.points.setdefault(r.do_ref, []).append(p)
        if cdc in _PHASED and r.rest[0] not in pl.subs.setdefault(r.do_ref, []):
            pl.subs[r.do_ref].append(r.rest[0])
        fc = "ST" if p.fc == "CO" else p.fc
        entry = (r.ln, fc, r.do)
        lst = fcds.setdefault(r.ld, [])
        if entry not in lst:
            lst.append(entry)
    if errors:
        raise ModelError("; ".join(errors))
    for ld, lns in pl.lds.items():
        for ln in BAY_LNS:
            lns.setdefault(ln, {})
        _link_controller(lns)
        for ln, have in lns.items():
            cls = Ref(ld, ln, "", ()).ln_class
            for do, cdc in MANDATORY.get(cls, []):
                if do not in have:
                    have[do] = (cdc, CTL_DIRECT_NORMAL if do in ("BlkOpn", "BlkCls") else 0)
        entries = fcds.setdefault(ld, [])
        for e in _linked_status(lns):  # what the IED derives is reported too (OpCnt counting, CSWI following)
            if e not in entries:
                entries.append(e)
        pl.datasets[ld] = [entries[i : i + DATASET_LIMIT] for i in range(0, len(entries), DATASET_LIMIT)]
        if device.iec61850.goose_interface:
            pl.goose[ld] = goose_entries(lns)
    return pl


def _linked_status(lns: dict[str, dict[str, tuple[str, int]]]) -> list[tuple[str, str, str]]:
    """Data-set entries for the status an IED derives from a mapped switch position: its controller's
    position, its operation counter and its blockings (a client sees them change by report)."""
    out: list[tuple[str, str, str]] = []
    for ln in lns:
        m = re.match(r"^(XCBR|XSWI)(\d+)$", ln)
        if not m or "Pos" not in lns[ln]:
            continue
        cswi = f"CSWI{m.group(2)}"
        if m.group(1) == "XCBR" and "Pos" in lns.get(cswi, {}):
            out.append((cswi, "ST", "Pos"))
        out += [(ln, "ST", "OpCnt"), (ln, "ST", "BlkOpn"), (ln, "ST", "BlkCls")]
    return out


def _link_controller(lns: dict[str, dict[str, tuple[str, int]]]) -> None:
    """CSWIn controls XCBRn (7-4: the controller carries the ctlModel): a controllable breaker
    position makes the controller's position controllable with the same model."""
    for ln, dos in list(lns.items()):
        m = re.match(r"^XCBR(\d+)$", ln)
        if m and dos.get("Pos", ("", 0))[1]:
            cswi = lns.setdefault(f"CSWI{m.group(1)}", {})
            cswi["Pos"] = ("DPC", dos["Pos"][1])


_CDC_SIGS = {
    "CDC_MV_create": [C.c_char_p, C.c_void_p, C.c_uint32, C.c_bool],
    "CDC_CMV_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_BCR_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_SPS_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_INS_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_ENS_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_ACD_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_ACT_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_LPL_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_DPL_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_DPC_create": [C.c_char_p, C.c_void_p, C.c_uint32, C.c_uint32],
    "CDC_SPC_create": [C.c_char_p, C.c_void_p, C.c_uint32, C.c_uint32],
    "CDC_ENC_create": [C.c_char_p, C.c_void_p, C.c_uint32, C.c_uint32],
    "DataObject_create": [C.c_char_p, C.c_void_p, C.c_int],
    "DataAttribute_create": [C.c_char_p, C.c_void_p, C.c_int, C.c_int, C.c_uint8, C.c_int, C.c_uint32],
    "CAC_AnalogueValue_create": [C.c_char_p, C.c_void_p, C.c_int, C.c_uint8, C.c_bool],
    "CAC_Unit_create": [C.c_char_p, C.c_void_p, C.c_bool],
    "DataAttribute_setValue": [C.c_void_p, C.c_void_p],
}
_VALUE_SIGS = {
    "MmsValue_newVisibleString": [C.c_char_p],
    "MmsValue_newIntegerFromInt32": [C.c_int32],
    "MmsValue_newIntegerFromInt64": [C.c_int64],
    "MmsValue_newUnsignedFromUint32": [C.c_uint32],
    "MmsValue_newFloat": [C.c_float],
    "MmsValue_newBoolean": [C.c_bool],
}
# CDC option bits (libiec61850 iec61850_cdc.h)
OPT_INST_MAG, OPT_DPL_SWREV, OPT_LN0_M, OPT_LN0_EX = 1 << 10, 1 << 18, 1 << 24, 1 << 25
DA_INT32U, DA_FLOAT32, DA_ENUM, DA_VSTRING255, DA_CONSTRUCTED = 9, 10, 12, 20, 27
FC_MX, FC_CF = 1, 4
TRG_DCHG = 1


def _cdc(name: str):
    L = lib()
    f = getattr(L, name)
    if f.argtypes is None:
        f.restype, f.argtypes = C.c_void_p, _CDC_SIGS[name]
    return f


def mms_value(value: object, da_type: int) -> int:
    """A new MmsValue for a DA of ``da_type`` (enumerations and INT types as integers)."""
    L = lib()
    for name, args in _VALUE_SIGS.items():
        f = getattr(L, name)
        if f.argtypes is None:
            f.restype, f.argtypes = C.c_void_p, args
    if da_type in (16, 17, 18, 19, 20, 21):
        return L.MmsValue_newVisibleString(str(value).encode())
    if da_type in (10, 11):
        return L.MmsValue_newFloat(float(value))  # type: ignore[arg-type]
    if da_type == 0:
        return L.MmsValue_newBoolean(bool(value))
    if da_type in (6, 7, 8, 9):
        return L.MmsValue_newUnsignedFromUint32(int(value))  # type: ignore[call-overload]
    if da_type == 4:
        return L.MmsValue_newIntegerFromInt64(int(value))  # type: ignore[call-overload]
    return L.MmsValue_newIntegerFromInt32(int(value))  # type: ignore[call-overload]


def set_value(node: int, value: object) -> None:
    """Initial value of a DA in the model (before the server exists)."""
    t = lib().DataAttribute_getType(node)
    _cdc("DataAttribute_setValue")(node, mms_value(value, t))


def _da(name: str, parent: int, da_type: int, fc: int, trg: int = 0) -> int:
    return _cdc("DataAttribute_create")(name.encode(), parent, da_type, fc, trg, 0, 0)


def _child(node: int, *path: str) -> int:
    L = lib()
    for n in path:
        node = L.ModelNode_getChild(node, n.encode())
        if not node:
            raise ModelError(f"model node {'.'.join(path)} missing (libiec61850 CDC changed?)")
    return node


def _analogue_cf(do: int, ana: Analogue) -> None:
    """units, db, zeroDb and rangeC (CF) of an MV or CMV, filled with its configured values."""
    units = _cdc("CAC_Unit_create")(b"units", do, True)
    set_value(_child(units, "SIUnit"), ana.si_unit)
    set_value(_child(units, "multiplier"), ana.multiplier)
    set_value(_da("db", do, DA_INT32U, FC_CF, TRG_DCHG), ana.db)
    set_value(_da("zeroDb", do, DA_INT32U, FC_CF, TRG_DCHG), ana.zero_db)
    rng = _da("rangeC", do, DA_CONSTRUCTED, FC_CF, TRG_DCHG)
    for lim, v in (("hhLim", ana.range_max), ("hLim", ana.range_max), ("lLim", ana.range_min),
                   ("llLim", ana.range_min), ("min", ana.range_min), ("max", ana.range_max)):
        av = _cdc("CAC_AnalogueValue_create")(lim.encode(), rng, FC_CF, TRG_DCHG, False)
        set_value(_child(av, "f"), v)


def _analogue_of(pl: Plan, do_ref: str, do: str, sub: str | None = None) -> Analogue:
    pts = [p for p in pl.points.get(do_ref, []) if sub is None or parse_ref(p.reference).rest[:1] == (sub,)]
    try:
        return analogue(pts[0], do)
    except UnitError as e:
        raise ModelError(f"point {pts[0].name} ({pts[0].reference}): {e}") from None


def _create_do(pl: Plan, ld: str, ln_name: str, cdc: str, do: str, ln: int, ctl: int) -> None:
    n = do.encode()
    ref = f"{ld}/{ln_name}.{do}"
    cls = Ref(ld, ln_name, do, ()).ln_class
    if cdc == "MV":
        node = _cdc("CDC_MV_create")(n, ln, OPT_INST_MAG, False)
        if ref in pl.points:
            _analogue_cf(node, _analogue_of(pl, ref, do))
    elif cdc in _PHASED:
        node = _cdc("DataObject_create")(n, ln, 0)
        for phs in pl.subs.get(ref, []):  # only the phases a point feeds (all are optional in 7-3)
            sub = _cdc("CDC_CMV_create")(phs.encode(), node, OPT_INST_MAG)
            _analogue_cf(sub, _analogue_of(pl, ref, do, phs))
    elif cdc in ("DPC", "SPC"):
        node = _cdc(f"CDC_{cdc}_create")(n, ln, 0, (ctl | CTL_HAS_CANCEL) if ctl else 0)
    elif cdc == "ENC":
        node = _cdc("CDC_ENC_create")(n, ln, 0, 0)  # Mod: status-only, the IED is always on
    elif cdc == "BCR":
        node = _cdc("CDC_BCR_create")(n, ln, 0)
        if ref in pl.points:
            si, mult, puls = counter_units(pl.points[ref][0])
            units = _cdc("CAC_Unit_create")(b"units", node, True)
            set_value(_child(units, "SIUnit"), si)
            set_value(_child(units, "multiplier"), mult)
            set_value(_child(node, "pulsQty"), puls)
    elif cdc == "LPL":
        node = _cdc("CDC_LPL_create")(n, ln, OPT_LN0_M | OPT_LN0_EX)
        set_value(_child(node, "vendor"), VENDOR)
        set_value(_child(node, "swRev"), SW_REV)
        set_value(_child(node, "configRev"), pl.config_rev)
        set_value(_child(node, "ldNs"), LD_NS)
    elif cdc == "DPL":
        node = _cdc("CDC_DPL_create")(n, ln, OPT_DPL_SWREV)
        set_value(_child(node, "vendor"), VENDOR)
        set_value(_child(node, "swRev"), SW_REV)
    else:
        node = _cdc(f"CDC_{cdc}_create")(n, ln, 0)
    own = own_value(cls, do, "stVal")
    if own is not None and ref not in pl.points:
        set_value(_child(node, "stVal"), own)
        pl.own.add(ref)
    elif cdc in ("LPL", "DPL"):
        pl.own.add(ref)


def rcb_names(pl: Plan, k: int) -> list[tuple[str, bool]]:
    """(name, buffered) of the RCBs of data set ``ds{k}``: brcb{k}01.., then urcb{k}01.., one instance per
    client that owns one (gateway, inspector, a second SCADA), named as libiec61850's generator names
    an indexed RCB."""
    return [(f"{kind}{k}{i:02d}", buffered)
            for buffered, kind, count in ((True, "brcb", pl.rcb_instances[0]), (False, "urcb", pl.rcb_instances[1]))
            for i in range(1, count + 1)]


def build(pl: Plan) -> int:
    """Create the IedModel in C memory; returns the IedModel* (caller destroys it)."""
    L = lib()
    model = L.IedModel_create(pl.ied_name.encode())
    try:
        _build_into(pl, model)
    except BaseException:
        L.IedModel_destroy(model)
        raise
    return model


def _build_into(pl: Plan, model: int) -> None:
    L = lib()
    for ld_name, lns in pl.lds.items():
        inst = ld_name[len(pl.ied_name) :]
        ld = L.LogicalDevice_createEx(inst.encode(), model, ld_name.encode())
        ln_ptrs: dict[str, int] = {}
        for ln_name in ["LLN0"] + [n for n in lns if n != "LLN0"]:
            ln = L.LogicalNode_create(ln_name.encode(), ld)
            ln_ptrs[ln_name] = ln
            for do, (cdc, ctl) in lns.get(ln_name, {}).items():
                _create_do(pl, ld_name, ln_name, cdc, do, ln, ctl)
        lln0 = ln_ptrs["LLN0"]
        for k, chunk in enumerate(pl.datasets.get(ld_name, []), start=1):
            ds_name = f"ds{k}"
            ds = L.DataSet_create(ds_name.encode(), lln0)
            for ln_name, fc, do in chunk:
                L.DataSetEntry_create(ds, f"{ln_name}${fc}${do}".encode(), -1, None)
            for rcb, buffered in rcb_names(pl, k):
                L.ReportControlBlock_create(
                    rcb.encode(), lln0, f"{ld_name}/LLN0.{rcb}".encode(), buffered, ds_name.encode(),
                    1, TRG_OPS, OPT_FLDS, BUF_TM_MS, INTEGRITY_MS,
                )
        if pl.goose.get(ld_name):
            add_gocb(lln0, ld_name, pl.goose[ld_name], list(pl.lds).index(ld_name))
