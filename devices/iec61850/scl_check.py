"""Structural check of an SCL file, standing in for the IEC 61850-6 XSD (which gridgate cannot ship):
names, references and orders a schema-validating tool and a client rely on. Returns the problems,
each naming the line and element; an empty list means the file passed."""

from __future__ import annotations

from lxml import etree

from devices.iec61850.scl_out import NS
from devices.iec61850.scl_types import BTYPE_TO_DA, FCS

_LN_ORDER = ["Private", "Text", "DataSet", "ReportControl", "LogControl", "DOI", "Inputs", "Log", "GSEControl",
             "SampledValueControl", "SettingControl"]


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _name(el: etree._Element) -> str:
    return etree.QName(el).localname


def _at(el: etree._Element) -> str:
    return f"line {el.sourceline}: <{_name(el)}{' name=' + repr(el.get('name')) if el.get('name') else ''}>"


def check(doc: etree._ElementTree) -> list[str]:
    bad: list[str] = []
    root = doc.getroot()
    if root.tag != _q("SCL"):
        return [f"root element is {root.tag}, expected SCL in namespace {NS}"]
    if root.find(_q("Header")) is None or not root.find(_q("Header")).get("id"):
        bad.append("SCL has no Header with an id")
    dtt = root.find(_q("DataTypeTemplates"))
    if dtt is None:
        return bad + ["SCL has no DataTypeTemplates"]
    tables: dict[str, dict[str, etree._Element]] = {}
    for kind in ("LNodeType", "DOType", "DAType", "EnumType"):
        tables[kind] = {}
        for el in dtt.findall(_q(kind)):
            if el.get("id") in tables[kind]:
                bad.append(f"{_at(el)}: duplicate {kind} id {el.get('id')!r}")
            tables[kind][el.get("id")] = el
    enum_vals = {k: {v.text or "" for v in e.findall(_q("EnumVal"))} for k, e in tables["EnumType"].items()}

    def ref(el: etree._Element, kind: str, attr: str = "type") -> etree._Element | None:
        t = tables[kind].get(el.get(attr))
        if t is None:
            bad.append(f"{_at(el)}: {attr}={el.get(attr)!r} is not a {kind}")
        return t

    for do in tables["DOType"].values():
        if not do.get("cdc"):
            bad.append(f"{_at(do)}: DOType {do.get('id')!r} has no cdc")
        for c in do:
            if not isinstance(c.tag, str):
                continue
            if _name(c) == "SDO":
                ref(c, "DOType")
            elif _name(c) == "DA":
                if c.get("fc") not in FCS:
                    bad.append(f"{_at(c)}: fc {c.get('fc')!r} is not a functional constraint")
                _attr(c, ref, bad, enum_vals)
    for da in tables["DAType"].values():
        for b in da.findall(_q("BDA")):
            _attr(b, ref, bad, enum_vals)
    for ln_t in tables["LNodeType"].values():
        for d in ln_t.findall(_q("DO")):
            ref(d, "DOType")

    ieds = {i.get("name"): i for i in root.findall(_q("IED"))}
    for cap in root.iter(_q("ConnectedAP")):
        ied = ieds.get(cap.get("iedName"))
        if ied is None or ied.find(f"{_q('AccessPoint')}[@name='{cap.get('apName')}']") is None:
            bad.append(f"{_at(cap)}: iedName/apName {cap.get('iedName')}/{cap.get('apName')} is no IED access point")
    for ied in ieds.values():
        for ldev in ied.iter(_q("LDevice")):
            lns = [e for e in ldev if isinstance(e.tag, str) and _name(e) in ("LN0", "LN")]
            if not lns or _name(lns[0]) != "LN0":
                bad.append(f"{_at(ldev)}: an LDevice starts with its LN0")
            by_name: dict[str, etree._Element] = {}
            for ln in lns:
                lnt = ref(ln, "LNodeType", "lnType")
                if lnt is not None and lnt.get("lnClass") != ln.get("lnClass"):
                    bad.append(f"{_at(ln)}: lnClass {ln.get('lnClass')} but its LNodeType is {lnt.get('lnClass')}")
                key = "LLN0" if ln.get("lnClass") == "LLN0" else f"{ln.get('prefix') or ''}{ln.get('lnClass')}{ln.get('inst') or ''}"
                by_name[key] = ln
                order = [_LN_ORDER.index(_name(c)) for c in ln if isinstance(c.tag, str) and _name(c) in _LN_ORDER]
                if order != sorted(order):
                    bad.append(f"{_at(ln)}: children out of schema order ({', '.join(_LN_ORDER)})")
                if lnt is not None:
                    for doi in ln.findall(_q("DOI")):
                        _instance(doi, _child_type(lnt, "DO", doi.get("name"), tables), tables, enum_vals, bad)
            for ln in lns:
                datasets = {ds.get("name") for ds in ln.findall(_q("DataSet"))}
                for ds in ln.findall(_q("DataSet")):
                    for f in ds.findall(_q("FCDA")):
                        key = "LLN0" if f.get("lnClass") == "LLN0" else f"{f.get('prefix') or ''}{f.get('lnClass')}{f.get('lnInst') or ''}"
                        target = by_name.get(key)
                        if target is None:
                            bad.append(f"{_at(f)}: no LN {key} in this LDevice")
                            continue
                        lnt = tables["LNodeType"].get(target.get("lnType"))
                        if lnt is not None and lnt.find(f"{_q('DO')}[@name='{f.get('doName')}']") is None:
                            bad.append(f"{_at(f)}: {key} has no data object {f.get('doName')}")
                        if f.get("fc") not in FCS:
                            bad.append(f"{_at(f)}: fc {f.get('fc')!r} is not a functional constraint")
                for rc in ln.findall(_q("ReportControl")):
                    if rc.get("datSet") and rc.get("datSet") not in datasets:
                        bad.append(f"{_at(rc)}: datSet {rc.get('datSet')!r} is not a DataSet of this LN")
                    if rc.get("confRev") is None:
                        bad.append(f"{_at(rc)}: confRev is required")
    return bad


def _attr(el, ref, bad: list[str], enum_vals: dict[str, set[str]]) -> None:
    bt = el.get("bType")
    if bt not in BTYPE_TO_DA:
        bad.append(f"{_at(el)}: bType {bt!r} is not a basic type")
    elif bt == "Struct":
        ref(el, "DAType")
    elif bt == "Enum":
        if ref(el, "EnumType") is not None:
            for v in el.findall(_q("Val")):
                if (v.text or "") not in enum_vals[el.get("type")]:
                    bad.append(f"{_at(el)}: Val {v.text!r} is not in EnumType {el.get('type')}")


def _child_type(t: etree._Element | None, tag: str, name: str | None, tables) -> tuple[str, etree._Element | None, etree._Element | None]:
    """(kind, type element, the DA/SDO/DO/BDA row) of child ``name`` of type ``t``."""
    if t is None:
        return "", None, None
    for row in t:
        if isinstance(row.tag, str) and row.get("name") == name and _name(row) in ("DO", "SDO", "DA", "BDA"):
            if _name(row) in ("DO", "SDO"):
                return "DOType", tables["DOType"].get(row.get("type")), row
            if row.get("bType") == "Struct":
                return "DAType", tables["DAType"].get(row.get("type")), row
            return "leaf", None, row
    return "", None, None


def _instance(el, found, tables, enum_vals, bad: list[str]) -> None:
    kind, t, row = found
    if row is None:
        bad.append(f"{_at(el)}: its type has no {el.get('name')!r}")
        return
    for c in el:
        if not isinstance(c.tag, str) or _name(c) not in ("SDI", "DAI"):
            continue
        sub = _child_type(t, "", c.get("name"), tables)
        if _name(c) == "SDI":
            _instance(c, sub, tables, enum_vals, bad)
        elif sub[2] is None:
            bad.append(f"{_at(c)}: its type has no {c.get('name')!r}")
        elif sub[2].get("bType") == "Enum":
            for v in c.findall(_q("Val")):
                if (v.text or "") not in enum_vals.get(sub[2].get("type"), set()):
                    bad.append(f"{_at(c)}: Val {v.text!r} is not in EnumType {sub[2].get('type')}")
