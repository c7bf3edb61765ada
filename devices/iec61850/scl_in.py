"""SCL in: build a libiec61850 model from one IED of an SCL file (.icd, .cid, .iid or .scd).

Parsed with lxml (no DTD, no entities, no network), types resolved through DataTypeTemplates, values
from template ``Val`` and DOI/SDI/DAI instances, data sets and report control blocks created as
libiec61850's own generator does (indexed RCBs become name01, name02, ...). What the model would get
wrong is an error naming the element and its line; what gridgate does not serve (GOOSE, SV, logs,
setting groups) is skipped and listed in ``SclMeta.skipped``.
"""

from __future__ import annotations

import os

from lxml import etree

from devices.iec61850.model import ModelError, _cdc, mms_value
from devices.iec61850.scl_out import NS, Rcb, SclMeta
from devices.iec61850.scl_types import BTYPE_TO_DA, FC_CODE
from gateway.protocols.iec61850.libiec import lib

_SKIPPED = ("GSEControl", "SampledValueControl", "LogControl", "SettingControl", "Log", "Inputs")


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _where(el: etree._Element) -> str:
    attrs = " ".join(f'{k}="{v}"' for k, v in el.attrib.items())
    return f"line {el.sourceline}: <{etree.QName(el).localname}{' ' + attrs if attrs else ''}>"


class SclError(ModelError):
    """An SCL file gridgate cannot serve; the message names the file, line and element."""


class _Loader:
    def __init__(self, path: str, root: etree._Element) -> None:
        self.path = path
        dtt = root.find(_q("DataTypeTemplates"))
        if dtt is None:
            raise self.err(root, "has no DataTypeTemplates; export an ICD/CID with templates from your tool")
        self.lnode = {e.get("id"): e for e in dtt.findall(_q("LNodeType"))}
        self.do = {e.get("id"): e for e in dtt.findall(_q("DOType"))}
        self.da = {e.get("id"): e for e in dtt.findall(_q("DAType"))}
        self.enum = {e.get("id"): {(v.text or ""): int(v.get("ord")) for v in e.findall(_q("EnumVal"))}
                     for e in dtt.findall(_q("EnumType"))}
        self.values: list[tuple[str, etree._Element, str | None]] = []  # (reference, Val element, enum type)
        self.enum_of: dict[str, str | None] = {}  # DA reference → EnumType id
        self.cdc: dict[str, str] = {}
        self.model = 0

    def err(self, el: etree._Element, msg: str) -> SclError:
        return SclError(f"{self.path}: {_where(el)} {msg}")

    def _type(self, table: dict, el: etree._Element, kind: str) -> etree._Element:
        t = el.get("type") or el.get("lnType")
        found = table.get(t)
        if found is None:
            raise self.err(el, f"refers to {kind} {t!r}, which is not in DataTypeTemplates")
        return found

    def data_object(self, el: etree._Element, parent: int, ref: str) -> None:
        if el.get("count") not in (None, "0"):
            raise self.err(el, "is an array of data objects; gridgate does not serve arrays")
        dot = self._type(self.do, el, "DOType")
        node = _cdc("DataObject_create")(el.get("name").encode(), parent, 0)
        self.cdc[ref] = dot.get("cdc", "")
        for c in dot:
            tag = etree.QName(c).localname
            if tag == "SDO":
                self.data_object(c, node, f"{ref}.{c.get('name')}")
            elif tag == "DA":
                self.attribute(c, node, f"{ref}.{c.get('name')}", c.get("fc"), ref.rsplit(".", 1)[-1], c)

    def attribute(self, el, parent: int, ref: str, fc: str | None, do_name: str, da_el) -> None:
        if fc not in FC_CODE:
            raise self.err(el, f"has functional constraint {fc!r}; expected one of {', '.join(sorted(FC_CODE))}")
        if el.get("count") not in (None, "0"):
            raise self.err(el, "is an array attribute; gridgate does not serve arrays")
        btype = el.get("bType")
        if btype not in BTYPE_TO_DA:
            raise self.err(el, f"has bType {btype!r}, which gridgate does not serve")
        trg = sum(bit for bit, flag in ((1, "dchg"), (2, "qchg"), (4, "dupd")) if da_el.get(flag) == "true")
        node = _cdc("DataAttribute_create")(el.get("name").encode(), parent, BTYPE_TO_DA[btype], FC_CODE[fc], trg, 0, 0)
        if btype == "Struct":
            dat = self._type(self.da, el, "DAType")
            for b in dat.findall(_q("BDA")):
                self.attribute(b, node, f"{ref}.{b.get('name')}", fc, do_name, da_el)
        if btype == "Enum":
            t = el.get("type")
            if t not in self.enum:
                raise self.err(el, f"refers to EnumType {t!r}, which is not in DataTypeTemplates")
            self.enum_of[ref] = t
        val = el.find(_q("Val"))
        if val is not None:
            self.values.append((ref, val, self.enum_of.get(ref)))

    def instances(self, el: etree._Element, ref: str) -> None:
        """DOI/SDI/DAI below ``el`` (LN or DOI/SDI) → values to set."""
        for c in el:
            tag = etree.QName(c).localname if isinstance(c.tag, str) else ""
            if tag in ("DOI", "SDI"):
                self.instances(c, f"{ref}.{c.get('name')}")
            elif tag == "DAI":
                val = c.find(_q("Val"))
                if val is not None:
                    r = f"{ref}.{c.get('name')}"
                    self.values.append((r, val, self.enum_of.get(r)))

    def set_values(self, model: int) -> None:
        L = lib()
        for ref, val, enum in self.values:
            node = L.IedModel_getModelNodeByObjectReference(model, ref.encode())
            if not node:
                raise self.err(val.getparent(), f"sets {ref}, which its data type does not have")
            t = L.DataAttribute_getType(node)
            text = (val.text or "").strip()
            try:
                if enum:
                    if text not in self.enum[enum]:
                        raise ValueError(f"{text!r} is not a value of EnumType {enum}")
                    v: object = self.enum[enum][text]
                elif t == 0:
                    if text not in ("true", "false", "1", "0"):
                        raise ValueError(f"{text!r} is not a BOOLEAN (true/false)")
                    v = text in ("true", "1")
                elif t in (10, 11):
                    v = float(text)
                elif t in (1, 2, 3, 4, 6, 7, 8, 9):
                    v = int(text)
                elif t in (16, 17, 18, 19, 20, 21):
                    v = text
                else:
                    continue  # Quality, Timestamp, Dbpos, Octet: run-time values, not configuration
            except ValueError as e:
                raise self.err(val.getparent(), f"Val: {e}") from None
            _cdc("DataAttribute_setValue")(node, mms_value(v, t))


def parse(path: str) -> etree._ElementTree:
    if not os.path.isfile(path):
        raise SclError(f"{path} does not exist; give the path of an .icd/.cid/.iid/.scd file")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        doc = etree.parse(path, parser)
    except etree.XMLSyntaxError as e:
        raise SclError(f"{path}: line {e.lineno}: not well-formed XML: {e.msg}") from None
    root = doc.getroot()
    if root.tag != _q("SCL"):
        raise SclError(f"{path}: line {root.sourceline}: root element is <{root.tag}>, expected <SCL xmlns=\"{NS}\">")
    return doc


def load_scl(path: str, ied_name: str | None = None) -> tuple[int, SclMeta]:
    """(IedModel*, what the model does not carry) for one IED of the file; caller destroys the model."""
    root = parse(path).getroot()
    ieds = root.findall(_q("IED"))
    names = [i.get("name") for i in ieds]
    if ied_name:
        ied = next((i for i in ieds if i.get("name") == ied_name), None)
        if ied is None:
            raise SclError(f"{path}: no <IED name=\"{ied_name}\">; the file has {names or 'no IED'}")
    elif len(ieds) == 1:
        ied = ieds[0]
    else:
        raise SclError(f"{path}: {len(ieds)} IEDs ({', '.join(map(str, names))}); set iec61850.ied_name to pick one")
    ld_ = _Loader(path, root)
    name = ied.get("name")
    meta = SclMeta(name, config_rev=ied.get("configVersion") or "1", desc=ied.get("desc") or "")
    meta.rcbs = {}
    ld_.cdc = meta.cdc
    port = root.find(f".//{_q('ConnectedAP')}[@iedName='{name}']/{_q('Private')}[@type='gridgate-mms-port']")
    if port is not None and (port.text or "").strip().isdigit():
        meta.port = int(port.text)
    L = lib()
    model = L.IedModel_create(name.encode())
    ld_.model = model
    try:
        servers = ied.findall(f"{_q('AccessPoint')}/{_q('Server')}")
        if not servers:
            raise ld_.err(ied, "has no AccessPoint with a Server; gridgate serves MMS servers")
        for server in servers:
            for ldev in server.findall(_q("LDevice")):
                inst = ldev.get("inst") or ""
                ld_name = ldev.get("ldName") or f"{name}{inst}"
                ld = L.LogicalDevice_createEx(inst.encode(), model, ld_name.encode())
                lns = [e for e in ldev if isinstance(e.tag, str) and etree.QName(e).localname in ("LN0", "LN")]
                if not lns or etree.QName(lns[0]).localname != "LN0":
                    raise ld_.err(ldev, "must start with its LN0 (IEC 61850-6)")
                lln0 = None
                ln_ptrs: dict[str, int] = {}
                for ln_el in lns:
                    cls = ln_el.get("lnClass") or ""
                    ln_name = "LLN0" if cls == "LLN0" else f"{ln_el.get('prefix') or ''}{cls}{ln_el.get('inst') or ''}"
                    lnt = ld_._type(ld_.lnode, ln_el, "LNodeType")
                    ln = L.LogicalNode_create(ln_name.encode(), ld)
                    ln_ptrs[ln_name] = ln
                    lln0 = lln0 or ln
                    for do in lnt.findall(_q("DO")):
                        ld_.data_object(do, ln, f"{ld_name}/{ln_name}.{do.get('name')}")
                    ld_.instances(ln_el, f"{ld_name}/{ln_name}")
                    for sk in _SKIPPED:
                        for e in ln_el.findall(_q(sk)):
                            meta.skipped.append(f"{_where(e)} not served (gridgate serves MMS data and reports)")
                for ln_el in lns:
                    cls = ln_el.get("lnClass") or ""
                    ln_name = "LLN0" if cls == "LLN0" else f"{ln_el.get('prefix') or ''}{cls}{ln_el.get('inst') or ''}"
                    _datasets_and_rcbs(ld_, ln_el, ln_ptrs[ln_name], ld_name, inst, meta)
        ld_.set_values(model)
        meta.own = {r.rsplit(".", 1)[0] for r, v, _ in ld_.values if r.endswith(".stVal")}
    except BaseException:
        L.IedModel_destroy(model)
        raise
    return model, meta


def _datasets_and_rcbs(ld_: _Loader, ln_el, ln: int, ld_name: str, inst: str, meta: SclMeta) -> None:
    L = lib()
    for ds_el in ln_el.findall(_q("DataSet")):
        ds_name = ds_el.get("name")
        ds = L.DataSet_create(ds_name.encode(), ln)
        entries = []
        for f in ds_el.findall(_q("FCDA")):
            if (f.get("ldInst") or inst) != inst:
                raise ld_.err(f, f"is in LD {f.get('ldInst')!r}; gridgate serves data sets of one LD only ({inst!r})")
            if f.get("fc") not in FC_CODE or not f.get("doName"):
                raise ld_.err(f, "needs doName and a functional constraint fc")
            ln_ref = "LLN0" if f.get("lnClass") == "LLN0" else f"{f.get('prefix') or ''}{f.get('lnClass')}{f.get('lnInst') or ''}"
            member = f"{ln_ref}.{f.get('doName')}" + (f".{f.get('daName')}" if f.get("daName") else "")
            if not L.IedModel_getModelNodeByObjectReference(ld_.model, f"{ld_name}/{member}".encode()):
                raise ld_.err(f, f"names {ld_name}/{member}, which the model does not have")
            var = "$".join([ln_ref, f.get("fc")] + member.split(".")[1:])
            L.DataSetEntry_create(ds, var.encode(), -1, None)
            entries.append((ln_ref, f.get("fc"), f.get("doName") + (f".{f.get('daName')}" if f.get("daName") else "")))
        meta.datasets.setdefault(ld_name, {})[ds_name] = entries
    for rc in ln_el.findall(_q("ReportControl")):
        ds = rc.get("datSet")
        if ds and ds not in meta.datasets.get(ld_name, {}):
            raise ld_.err(rc, f"reports data set {ds!r}, which this LN0 does not define")
        trg_el, opt_el = rc.find(_q("TrgOps")), rc.find(_q("OptFields"))
        trg = sum(b for b, k in ((1, "dchg"), (2, "qchg"), (4, "dupd"), (8, "period"), (16, "gi"))
                  if trg_el is not None and trg_el.get(k) == "true")
        opt = sum(b for b, k in ((1, "seqNum"), (2, "timeStamp"), (4, "reasonCode"), (8, "dataSet"), (16, "dataRef"),
                                 (32, "bufOvfl"), (64, "entryID"), (128, "configRef"))
                  if opt_el is not None and opt_el.get(k) == "true")
        en = rc.find(_q("RptEnabled"))
        n = int(en.get("max", "1")) if en is not None else 1
        buffered = rc.get("buffered") == "true"
        indexed = rc.get("indexed", "true") == "true"
        names = [f"{rc.get('name')}{i:02d}" for i in range(1, n + 1)] if indexed else [rc.get("name")]
        for nm in names:
            r = Rcb(nm, ds or "", buffered, rc.get("rptID") or "", int(rc.get("confRev", "1")), trg, opt,
                    int(rc.get("bufTime", "0")), int(rc.get("intgPd", "0")))
            L.ReportControlBlock_create(nm.encode(), ln, (r.rpt_id or None) and r.rpt_id.encode(), buffered,
                                        ds.encode() if ds else None, r.conf_rev, trg, opt, r.buf_time, r.intg_pd)
            meta.rcbs.setdefault(ld_name, []).append(r)
