"""SCL of an emulated IED: export the served model (generated or loaded) as a CID file."""

from __future__ import annotations

import ctypes as C

from lxml import etree

from devices.iec61850.model import BUF_TM_MS, INTEGRITY_MS, OPT_FLDS, TRG_OPS, Plan, build, plan, rcb_names
from devices.iec61850.scl_out import Rcb, SclMeta, export
from devices.iec61850.server import SCL_SUFFIXES, _load_model_file
from gateway.protocols.iec61850.config import Iec61850Device
from gateway.protocols.iec61850.libiec import lib, scalar

MMS_VISIBLE_STRING = 8


def meta_of_plan(pl: Plan, device: Iec61850Device) -> SclMeta:
    m = SclMeta(pl.ied_name, device.host, device.port, own=set(pl.own), config_rev=pl.config_rev,
                desc=device.description)
    m.rcbs = {}
    for ld, lns in pl.lds.items():
        for ln, dos in lns.items():
            for do, (cdc, _ctl) in dos.items():
                m.cdc[f"{ld}/{ln}.{do}"] = cdc
        m.datasets[ld] = {}
        m.rcbs[ld] = []
        for k, chunk in enumerate(pl.datasets.get(ld, []), start=1):
            m.datasets[ld][f"ds{k}"] = list(chunk)
            for name, buffered in rcb_names(pl, k):
                m.rcbs[ld].append(Rcb(name, f"ds{k}", buffered, f"{ld}/LLN0.{name}", 1, TRG_OPS, OPT_FLDS,
                                      BUF_TM_MS, INTEGRITY_MS))
    return m


def value_reader(server: int):
    """read(node) → the DA's value as python (strings decoded), None for what has no simple value."""
    L = lib()
    X = lib()
    to_string = L.MmsValue_toString
    to_string.restype, to_string.argtypes = C.c_char_p, [C.c_void_p]

    def read(node: int) -> object:
        v = X.IedServer_getAttributeValue(server, node)
        if not v:
            return None
        if L.MmsValue_getType(v) == MMS_VISIBLE_STRING:
            return (to_string(v) or b"").decode()
        if L.MmsValue_getType(v) in (7, 14):  # octet string, UTC time: not configuration values
            return None
        return scalar(v)

    return read


def export_device(device: Iec61850Device) -> etree._ElementTree:
    """The CID of an emulated IED as it is served (model built, values read, no socket opened)."""
    L = lib()
    scl = device.iec61850.scl
    if scl and scl.lower().endswith(SCL_SUFFIXES):
        from devices.iec61850.scl_in import load_scl

        model, meta = load_scl(scl, device.iec61850.ied_name)
        meta.host, meta.port = device.host, device.port
    elif scl:  # a libiec61850 .cfg model: its LNs, DOs and values (its data sets and RCBs are not exported)
        model = _load_model_file(scl)
        meta = SclMeta(device.iec61850.ied_name or device.name, device.host, device.port, desc=device.description)
        meta.rcbs = {}
    else:
        pl = plan(device)
        model = build(pl)
        meta = meta_of_plan(pl, device)
    cfg = L.IedServerConfig_create()
    server = L.IedServer_createWithConfig(model, None, cfg)
    L.IedServerConfig_destroy(cfg)
    try:
        return export(model, meta, value_reader(server))
    finally:
        L.IedServer_destroy(server)
        L.IedModel_destroy(model)


def to_bytes(doc: etree._ElementTree) -> bytes:
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)
