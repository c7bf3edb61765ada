"""Build a libiec61850 data model (LDs, LNs, CDCs, data sets, RCBs) from a device's points.

Each MmsPoint.reference names a data attribute; the LN class and DO name choose the CDC
(MMXU.TotW → MV, MMXU.PhV → WYE, XCBR.Pos → DPC, ...). The standard LNs of a feeder-bay
protection IED are added to every LD so the model looks like a real one even when the
config maps only a few points. Data sets are one FCD per referenced DO, at most
``DATASET_LIMIT`` entries each, and every data set gets one buffered and one unbuffered RCB
in LLN0.
"""

from __future__ import annotations

import ctypes as C
import re
from dataclasses import dataclass, field

from gateway.protocols.iec61850.config import Iec61850Device, MmsPoint
from gateway.protocols.iec61850.libiec import CTL_DIRECT_NORMAL, CTL_SBO_ENHANCED, lib

#: libiec61850 gets disproportionately slow above ~200 report entries per data set
DATASET_LIMIT = 100
CTL_HAS_CANCEL = 16
INTEGRITY_MS = 60_000  # every value re-sent once a minute (reason integrity), also a sign of life
BUF_TM_MS = 0  # report every change at once: 10 ms of buffer time would add ~10 ms of latency
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
    ("LLN0", "Mod"): "ENS", ("LLN0", "Beh"): "ENS", ("LLN0", "Health"): "ENS", ("LLN0", "NamPlt"): "LPL",
    ("LPHD", "PhyNam"): "DPL", ("LPHD", "PhyHealth"): "ENS", ("LPHD", "Proxy"): "SPS",
    ("YLTC", "TapPos"): "INS", ("ATCC", "TapChg"): "INS",
}
_CDC_BY_PREFIX = {"Ind": "SPS", "AnIn": "MV", "SPCSO": "SPC", "IntIn": "INS", "Alm": "SPS", "Cnt": "BCR"}
_CDC_BY_DA = {"mag": "MV", "cVal": "CMV", "actVal": "BCR", "general": "ACD"}
_CONTROLLABLE = {"DPC", "SPC"}

#: the LNs and DOs of a feeder-bay protection IED (added to every LD unless already there)
STANDARD_LNS: dict[str, list[str]] = {
    "LLN0": ["Mod", "Beh", "Health", "NamPlt"],
    "LPHD1": ["PhyNam", "PhyHealth", "Proxy"],
    "MMXU1": ["TotW", "TotVAr", "Hz", "PhV", "A"],
    "MMTR1": ["TotWh"],
    "XCBR1": ["Pos", "Loc", "OpCnt"],
    "CSWI1": ["Pos"],
    "PTOC1": ["Op", "Str"],
    "GGIO1": ["Ind1", "Ind2", "Ind3", "Ind4"],
}


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


def plan(device: Iec61850Device) -> Plan:
    """Check every point against the generated model and decide its structure (no C calls)."""
    ied = device.iec61850.ied_name or device.name
    pl = Plan(ied)
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
        fc = "ST" if p.fc == "CO" else p.fc
        entry = (r.ln, fc, r.do)
        lst = fcds.setdefault(r.ld, [])
        if entry not in lst:
            lst.append(entry)
    if errors:
        raise ModelError("; ".join(errors))
    for ld, lns in pl.lds.items():
        for ln, dos in STANDARD_LNS.items():
            have = lns.setdefault(ln, {})
            for do in dos:
                if do not in have:
                    c = cdc_of(Ref(ld, ln, do, ()))
                    assert c is not None
                    have[do] = (c, 0)
        entries = fcds.get(ld, [])
        pl.datasets[ld] = [entries[i : i + DATASET_LIMIT] for i in range(0, len(entries), DATASET_LIMIT)]
    return pl


_CDC_SIGS = {
    "CDC_MV_create": [C.c_char_p, C.c_void_p, C.c_uint32, C.c_bool],
    "CDC_CMV_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_WYE_create": [C.c_char_p, C.c_void_p, C.c_uint32],
    "CDC_DEL_create": [C.c_char_p, C.c_void_p, C.c_uint32],
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
}


def _cdc(name: str):
    L = lib()
    f = getattr(L, name)
    if f.argtypes is None:
        f.restype, f.argtypes = C.c_void_p, _CDC_SIGS[name]
    return f


def _create_do(cdc: str, do: str, ln: int, ctl: int) -> int:
    n = do.encode()
    if cdc == "MV":
        return _cdc("CDC_MV_create")(n, ln, 0, False)
    if cdc in ("DPC", "SPC"):
        return _cdc(f"CDC_{cdc}_create")(n, ln, 0, (ctl | CTL_HAS_CANCEL) if ctl else 0)
    return _cdc(f"CDC_{cdc}_create")(n, ln, 0)


def build(pl: Plan) -> int:
    """Create the IedModel in C memory; returns the IedModel* (caller destroys it)."""
    L = lib()
    model = L.IedModel_create(pl.ied_name.encode())
    for ld_name, lns in pl.lds.items():
        inst = ld_name[len(pl.ied_name) :]
        ld = L.LogicalDevice_createEx(inst.encode(), model, ld_name.encode())
        ln_ptrs: dict[str, int] = {}
        for ln_name in ["LLN0"] + [n for n in lns if n != "LLN0"]:
            ln = L.LogicalNode_create(ln_name.encode(), ld)
            ln_ptrs[ln_name] = ln
            for do, (cdc, ctl) in lns.get(ln_name, {}).items():
                _create_do(cdc, do, ln, ctl)
        lln0 = ln_ptrs["LLN0"]
        for k, chunk in enumerate(pl.datasets.get(ld_name, []), start=1):
            ds_name = f"ds{k}"
            ds = L.DataSet_create(ds_name.encode(), lln0)
            for ln_name, fc, do in chunk:
                L.DataSetEntry_create(ds, f"{ln_name}${fc}${do}".encode(), -1, None)
            for buffered, kind in ((True, "brcb"), (False, "urcb")):
                for inst_no in (1, 2):  # a second instance for a second client (an inspector, a test)
                    rcb = f"{kind}{k}{inst_no:02d}"
                    L.ReportControlBlock_create(
                        rcb.encode(), lln0, f"{ld_name}/LLN0.{rcb}".encode(), buffered, ds_name.encode(),
                        1, TRG_OPS, OPT_FLDS, BUF_TM_MS, INTEGRITY_MS,
                    )
    return model
