"""SCL out: write what an emulated IED really serves as an IEC 61850-6 (Ed. 2, 2007B) CID file.

The model is walked in C memory (``walk.py``), so the file describes the served model whatever built
it; ``SclMeta`` adds what the C model does not carry (CDC names, data sets, report control blocks,
the address). Data type templates are derived from the structure and shared by identical types.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from lxml import etree

from devices.iec61850.scl_types import DA_TO_BTYPE, ENUMS, enum_type
from devices.iec61850.walk import DA_TYPE, DO_TYPE, Node, logical_nodes, tree

NS = "http://www.iec.ch/61850/2003/SCL"
VALUE_FCS = {"CF", "DC", "EX", "SP", "SG", "SE"}


@dataclass
class Rcb:
    name: str
    dataset: str
    buffered: bool
    rpt_id: str = ""
    conf_rev: int = 1
    trg_ops: int = 1 | 2 | 8 | 16
    opt_flds: int = 1 | 2 | 4 | 8 | 32 | 64 | 128
    buf_time: int = 0
    intg_pd: int = 60_000


@dataclass
class SclMeta:
    """What the C model does not say: CDCs (DO reference → CDC), data sets, RCBs, address, own status."""

    ied_name: str
    host: str = "127.0.0.1"
    port: int = 102
    cdc: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, dict[str, list[tuple[str, str, str]]]] = field(default_factory=dict)  # ld → name → (ln, fc, do)
    rcbs: dict[str, list[Rcb]] = field(default_factory=list)  # type: ignore[assignment]
    own: set[str] = field(default_factory=set)  # DO refs whose status value the file states (Val)
    config_rev: str = "1"
    desc: str = ""
    skipped: list[str] = field(default_factory=list)  # SCL in: elements not served (GOOSE, SV, logs, ...)


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _split_ln(ln: str) -> tuple[str, str, str]:
    """prefix, lnClass, inst of an LN name (LLN0 has neither prefix nor inst)."""
    if ln == "LLN0":
        return "", "LLN0", ""
    i = len(ln)
    while i and ln[i - 1].isdigit():
        i -= 1
    return ln[: i - 4], ln[i - 4 : i], ln[i:]


class _Templates:
    """DataTypeTemplates built bottom-up; identical structures share one id."""

    def __init__(self) -> None:
        self.lnode: dict[str, etree._Element] = {}
        self.do: dict[str, etree._Element] = {}
        self.da: dict[str, etree._Element] = {}
        self.enums: set[str] = set()

    @staticmethod
    def _id(kind: str, sig: str, hint: str) -> str:
        return f"GG_{hint}_{hashlib.sha1(sig.encode()).hexdigest()[:8]}" if kind else hint

    def da_type(self, n: Node, do_name: str) -> str:
        rows = [self._attr_el("BDA", c, do_name) for c in n.children]
        sig = "DA|" + "|".join(etree.tostring(r).decode() for r in rows)
        tid = self._id("da", sig, n.name)
        if tid not in self.da:
            el = etree.Element(_q("DAType"), id=tid)
            el.extend(rows)
            self.da[tid] = el
        return tid

    def _attr_el(self, tag: str, n: Node, do_name: str) -> etree._Element:
        btype = DA_TO_BTYPE.get(n.da_type, "Struct")
        el = etree.Element(_q(tag), name=n.name, bType=btype)
        if tag == "DA":
            el.set("fc", n.fc)
            for bit, flag in ((1, "dchg"), (2, "qchg"), (4, "dupd")):
                if n.trg & bit:
                    el.set(flag, "true")
        if btype == "Struct":
            el.set("type", self.da_type(n, do_name))
        elif btype == "Enum":
            t = enum_type(do_name, n.name) or "GG_Ordinal"
            self.enums.add(t)
            el.set("type", t)
        return el

    def do_type(self, n: Node, cdc: str) -> str:
        rows = []
        for c in n.children:
            if c.kind == DO_TYPE:
                rows.append(etree.Element(_q("SDO"), name=c.name, type=self.do_type(c, "CMV" if cdc in ("WYE", "DEL") else cdc)))
            else:
                rows.append(self._attr_el("DA", c, n.name))
        sig = cdc + "|" + "|".join(etree.tostring(r).decode() for r in rows)
        tid = self._id("do", sig, cdc)
        if tid not in self.do:
            el = etree.Element(_q("DOType"), id=tid, cdc=cdc)
            el.extend(rows)
            self.do[tid] = el
        return tid

    def lnode_type(self, ln_class: str, dos: list[tuple[str, str]]) -> str:
        sig = ln_class + "|" + "|".join(f"{a}:{b}" for a, b in dos)
        tid = self._id("ln", sig, ln_class)
        if tid not in self.lnode:
            el = etree.Element(_q("LNodeType"), id=tid, lnClass=ln_class)
            for name, t in dos:
                etree.SubElement(el, _q("DO"), name=name, type=t)
            self.lnode[tid] = el
        return tid

    def element(self) -> etree._Element:
        dtt = etree.Element(_q("DataTypeTemplates"))
        for group in (self.lnode, self.do, self.da):
            for k in sorted(group):
                dtt.append(group[k])
        for t in sorted(self.enums):
            el = etree.SubElement(dtt, _q("EnumType"), id=t)
            for ord_, text in sorted(ENUMS.get(t, {i: str(i) for i in range(32)}).items()):
                ev = etree.SubElement(el, _q("EnumVal"), ord=str(ord_))
                ev.text = text
        return dtt


def _val_text(n: Node, do_name: str, v: object) -> str | None:
    if v is None:
        return None
    if DA_TO_BTYPE.get(n.da_type) == "Enum":
        t = enum_type(do_name, n.name)
        return ENUMS.get(t, {}).get(int(v), str(v)) if t else str(v)  # type: ignore[call-overload]
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(float(f"{v:.7g}"))
    return str(v)


def _instances(parent: etree._Element, n: Node, do_name: str, read, want_status: bool) -> bool:
    """DOI/SDI/DAI with the values of configuration FCs (and status of own DOs); True if any written."""
    wrote = False
    for c in n.children:
        if c.kind == DA_TYPE and not c.children:
            if c.fc in VALUE_FCS or (want_status and c.fc == "ST" and c.name == "stVal"):
                text = _val_text(c, do_name, read(c.ptr))
                if text is not None and (text != "" or c.fc in ("DC", "EX")):
                    dai = etree.SubElement(parent, _q("DAI"), name=c.name)
                    etree.SubElement(dai, _q("Val")).text = text
                    wrote = True
        elif c.children:
            sdi = etree.Element(_q("SDI"), name=c.name)
            if _instances(sdi, c, do_name if c.kind == DA_TYPE else c.name, read, want_status and c.kind == DO_TYPE):
                parent.append(sdi)
                wrote = True
    return wrote


def export(model: int, meta: SclMeta, read) -> etree._ElementTree:
    """The CID of one IED; ``read(node)`` returns a DA's current value (python) or None."""
    E = etree.SubElement
    scl = etree.Element(_q("SCL"), nsmap={None: NS}, version="2007", revision="B", release="4")
    hdr = E(scl, _q("Header"), id=meta.ied_name, version=meta.config_rev, revision="", toolID="gridgate",
            nameStructure="IEDName")
    hdr.text = None
    comm = E(scl, _q("Communication"))
    sn = E(comm, _q("SubNetwork"), name="gridgate-lab", type="8-MMS")
    cap = E(sn, _q("ConnectedAP"), iedName=meta.ied_name, apName="AP1")
    # the MMS port is not an SCL address parameter: a Private element keeps it for the round trip
    E(cap, _q("Private"), type="gridgate-mms-port").text = str(meta.port)
    addr = E(cap, _q("Address"))
    for t, v in (("IP", meta.host), ("IP-SUBNET", "255.0.0.0"), ("IP-GATEWAY", meta.host),
                 ("OSI-AP-Title", "1,1,9999,1"), ("OSI-AE-Qualifier", "12"), ("OSI-PSEL", "00000001"),
                 ("OSI-SSEL", "0001"), ("OSI-TSEL", "0001")):
        E(addr, _q("P"), type=t).text = v
    ied = E(scl, _q("IED"), name=meta.ied_name, manufacturer="gridgate", type="gridgate-emulated-IED",
            configVersion=meta.config_rev, desc=meta.desc)
    svc = E(ied, _q("Services"))
    for tag in ("DynAssociation", "GetDirectory", "GetDataObjectDefinition", "DataObjectDirectory",
                "GetDataSetValue", "DataSetDirectory", "ReadWrite", "GetCBValues", "ConfLNs"):
        E(svc, _q(tag))
    E(svc, _q("ConfReportControl"), max="64")
    E(svc, _q("ReportSettings"), cbName="Conf", datSet="Conf", rptID="Dyn", optFields="Dyn", bufTime="Dyn",
      trgOps="Dyn", intgPd="Dyn")
    ap = E(ied, _q("AccessPoint"), name="AP1")
    server = E(ap, _q("Server"))
    E(server, _q("Authentication"), none="true")
    tpl = _Templates()
    lds: dict[str, etree._Element] = {}
    for ld_name, ln_name, ln_ptr in logical_nodes(model):
        inst = ld_name[len(meta.ied_name) :] if ld_name.startswith(meta.ied_name) else ld_name
        ld_el = lds.get(ld_name)
        if ld_el is None:
            ld_el = lds[ld_name] = E(server, _q("LDevice"), inst=inst)
            if not ld_name.startswith(meta.ied_name) or not inst:
                ld_el.set("ldName", ld_name)
        prefix, cls, ln_inst = _split_ln(ln_name)
        dos = [tree(c) for c in _children(ln_ptr)]
        dos = [d for d in dos if d.kind == DO_TYPE]
        types = []
        for d in dos:
            cdc = meta.cdc.get(f"{ld_name}/{ln_name}.{d.name}") or _guess_cdc(d)
            types.append((d.name, tpl.do_type(d, cdc)))
        ln_type = tpl.lnode_type(cls, types)
        if cls == "LLN0":
            ln_el = E(ld_el, _q("LN0"), lnClass="LLN0", inst="", lnType=ln_type)
            for ds_name, entries in meta.datasets.get(ld_name, {}).items():
                ds = E(ln_el, _q("DataSet"), name=ds_name)
                for ln, fc, do in entries:
                    p, c, i = _split_ln(ln)
                    fcda = E(ds, _q("FCDA"), ldInst=inst, prefix=p, lnClass=c, lnInst=i, doName=do, fc=fc)
                    if not p:
                        del fcda.attrib["prefix"]
            for r in meta.rcbs.get(ld_name, []):
                rc = E(ln_el, _q("ReportControl"), name=r.name, rptID=r.rpt_id or f"{ld_name}/LLN0.{r.name}",
                       datSet=r.dataset, confRev=str(r.conf_rev), buffered="true" if r.buffered else "false", indexed="false",
                       bufTime=str(r.buf_time), intgPd=str(r.intg_pd))
                E(rc, _q("TrgOps"), **{k: "true" for b, k in ((1, "dchg"), (2, "qchg"), (4, "dupd"), (8, "period"),
                                                               (16, "gi")) if r.trg_ops & b})
                E(rc, _q("OptFields"), **{k: "true" for b, k in ((1, "seqNum"), (2, "timeStamp"), (4, "reasonCode"),
                                                                  (8, "dataSet"), (16, "dataRef"), (32, "bufOvfl"),
                                                                  (64, "entryID"), (128, "configRef")) if r.opt_flds & b})
                E(rc, _q("RptEnabled"), max="1")
        else:
            ln_el = E(ld_el, _q("LN"), lnClass=cls, inst=ln_inst, lnType=ln_type)
            if prefix:
                ln_el.set("prefix", prefix)
        for d in dos:
            doi = etree.Element(_q("DOI"), name=d.name)
            if _instances(doi, d, d.name, read, f"{ld_name}/{ln_name}.{d.name}" in meta.own):
                ln_el.append(doi)
    scl.append(tpl.element())
    return etree.ElementTree(scl)


def _children(ptr: int):
    from devices.iec61850.walk import children

    return children(ptr)


def _guess_cdc(d: Node) -> str:
    names = {c.name for c in d.children}
    if "Oper" in names:
        return "DPC" if any(c.name == "stVal" and c.da_type == 25 for c in d.children) else "SPC"
    for key, cdc in (("mag", "MV"), ("cVal", "CMV"), ("actVal", "BCR"), ("dirGeneral", "ACD"), ("general", "ACT"),
                     ("phsA", "WYE"), ("phsAB", "DEL"), ("configRev", "LPL"), ("vendor", "DPL")):
        if key in names:
            return cdc
    st = next((c for c in d.children if c.name == "stVal"), None)
    if st is None:
        return "SPS"
    return {0: "SPS", 3: "INS", 12: "ENS", 25: "DPS"}.get(st.da_type, "INS")
