"""SCL out and in: every site IED exports a CID that passes the structural check, the gateway serves
it back as the same model (round trip through a real MMS client), a hand-written vendor-style ICD is
served, and bad SCL is an error naming the line and element."""

from __future__ import annotations

import os

import pytest
from lxml import etree

from devices.iec61850.model import ModelError
from devices.iec61850.scl import export_device, to_bytes
from devices.iec61850.scl_check import check
from devices.iec61850.server import Iec61850Ied
from gateway.protocols.iec61850.config import Iec61850Device
from gateway.southbound.iec61850 import MmsSource
from tests.iec61850.browse import Browser
from tests.iec61850.conftest import fast_backoff, running
from tests.iec61850.support import HERE, IedProcess
from tests.iec61850.test_conformance import site
from tests.support.mosquitto import free_port

NS = {"s": "http://www.iec.ch/61850/2003/SCL"}
VENDOR = os.path.join(HERE, "data", "vendor_bay.icd")


def _ieds():
    return [d for d in site().devices if d.protocol == "iec61850"]


@pytest.mark.parametrize("idx", range(6))
def test_every_site_ied_exports_a_valid_cid(idx: int):
    dev = _ieds()[idx]
    doc = etree.fromstring(to_bytes(export_device(dev)))  # well-formed: parsed back by lxml
    assert check(etree.ElementTree(doc)) == []
    ied_name = dev.iec61850.ied_name
    assert doc.xpath("/s:SCL/s:IED/@name", namespaces=NS) == [ied_name]
    cap = doc.xpath("//s:ConnectedAP", namespaces=NS)[0]
    assert cap.xpath("s:Address/s:P[@type='IP']/text()", namespaces=NS) == ["127.0.0.1"]
    assert cap.xpath("s:Private[@type='gridgate-mms-port']/text()", namespaces=NS) == [str(dev.port)]
    fcdas = doc.xpath("//s:DataSet[@name='ds1']/s:FCDA", namespaces=NS)
    fed = {p.reference.split(".")[0] + "." + p.reference.split(".")[1] for p in dev.points}
    assert len(fcdas) == len(fed) + 4  # + CSWI1.Pos, XCBR1.OpCnt/BlkOpn/BlkCls the IED derives
    assert len(doc.xpath("//s:LN0/s:ReportControl", namespaces=NS)) == 4
    # the TotW units as served: kW values with scale 1000 → MW (multiplier M) of W
    totw = doc.xpath("//s:LN[@lnClass='MMXU']/s:DOI[@name='TotW']", namespaces=NS)[0]
    assert totw.xpath("s:SDI[@name='units']/s:DAI[@name='SIUnit']/s:Val/text()", namespaces=NS) == ["W"]
    assert totw.xpath("s:SDI[@name='units']/s:DAI[@name='multiplier']/s:Val/text()", namespaces=NS) == ["M"]
    mod = doc.xpath("//s:LN0/s:DOI[@name='Beh']/s:DAI[@name='stVal']/s:Val/text()", namespaces=NS)
    assert mod == ["on"]


def test_round_trip_export_load_serves_the_same_model(tmp_path):
    dev = _ieds()[0]
    path = tmp_path / "f1.cid"
    first = to_bytes(export_device(dev))
    path.write_bytes(first)
    loaded = dev.model_copy(update={"port": free_port(), "iec61850": dev.iec61850.model_copy(update={"scl": str(path)})})
    assert to_bytes(export_device(loaded)).replace(str(loaded.port).encode(), str(dev.port).encode()) == first

    def served(d: Iec61850Device):
        with IedProcess(d), Browser("127.0.0.1", d.port) as b:
            leaves = b.walk()
            ld = b.lds()
            return (
                ld,
                {r: x.fc for r, x in leaves.items()},
                {r: x.value for r, x in leaves.items() if x.fc in ("CF", "DC", "EX")},
                {r: (x.value & 3 if r.endswith(".q") else x.value) for r, x in leaves.items()
                 if x.fc == "ST" and r.endswith((".stVal", ".q")) and ".Pos." not in r},
                b.datasets(ld[0]),
            )

    a, b = served(dev), served(loaded)
    assert a[0] == b[0]
    assert a[1] == b[1] and len(a[1]) > 150  # same references with the same FCs
    assert a[2] == b[2]  # same configuration values (units, db, rangeC, ctlModel, NamPlt)
    assert a[3] == b[3]  # same own status (Beh, Health, Loc, OpCnt) and the same INVALID for unfed data
    assert a[4] == b[4] == ["LLN0$ds1"]


async def test_hand_written_vendor_icd_is_served():
    eq = "S1/F1/CB1"
    dev = Iec61850Device.model_validate({
        "name": "vnd", "kind": "ied", "protocol": "iec61850", "port": free_port(), "timeout": 1.0, "poll_interval": 0.5,
        "iec61850": {"ied_name": "VND1", "scl": VENDOR},
        "points": [
            {"name": "P", "reference": "VND1CTRL/MMXU1.TotW.mag.f", "measurement": {"equipment": eq, "type": "ThreePhaseActivePower"}},
            {"name": "Va", "reference": "VND1CTRL/MMXU1.PhV.phsA.cVal.mag.f",
             "measurement": {"equipment": eq, "type": "PhaseVoltage", "phases": "AN"}},
            {"name": "CB", "reference": "VND1CTRL/Q0XCBR1.Pos.stVal", "fc": "ST", "measurement": {"equipment": eq, "type": "SwitchPosition"}},
        ],
    })
    with IedProcess(dev) as ied, Browser("127.0.0.1", dev.port) as b:
        assert b.lds() == ["VND1CTRL"]
        assert b.read("VND1CTRL/LLN0.NamPlt.vendor", "DC") == "ACME Relays"
        assert b.read("VND1CTRL/LLN0.Mod.stVal", "ST") == 1 and b.read("VND1CTRL/LLN0.Mod.q", "ST") == 0
        assert b.read("VND1CTRL/MMXU1.TotW.units.multiplier", "CF") == 3
        assert b.read("VND1CTRL/Q0CSWI1.Pos.ctlModel", "CF") == 1
        assert b.read("VND1CTRL/MMXU1.TotW.q", "MX") & 3 == 2  # fed by a point, not yet written: INVALID
        src = MmsSource(dev, fast_backoff())
        async with running(src) as sink:
            await sink.wait(lambda: src.connected and sink.of("CB"), what="association")
            assert {r.ref for r in src._rcbs} >= {"VND1CTRL/LLN0.BR.MeasBRCB01"}
            # the file says kW (units.multiplier k): the IED serves 1500 W as 1.5, the gateway reads the
            # units from the model (the point's scale of 1 is replaced) and publishes 1500 W again
            ts = ied.update("P", 1500.0)
            r = await sink.wait(lambda: [x for x in sink.of("P") if x.timestamp == ts], what="P report")
            assert r[-1].value == 1500.0 and r[-1].quality == 0
            assert b.read("VND1CTRL/MMXU1.TotW.mag.f", "MX") == 1.5
            assert src._factors["P"] == 1000.0 and src._factors["Va"] == 1000.0
            # db 500 of rangeC ±20000 kW → 200 kW: a change of 100 kW is not reported, instMag still follows
            ts = ied.update("P", 101_500.0)
            assert b.read("VND1CTRL/MMXU1.TotW.instMag.f", "MX") == 101.5
            assert b.read("VND1CTRL/MMXU1.TotW.mag.f", "MX") == 1.5
            ts = ied.update("P", 301_500.0)
            r = await sink.wait(lambda: [x for x in sink.of("P") if x.timestamp == ts], what="P beyond db")
            assert r[-1].value == 301_500.0
            ied.update("CB", 2)
            assert b.read("VND1CTRL/Q0CSWI1.Pos.stVal", "ST") == 2  # the controller follows (prefix Q0)
            ied.update("CB", 1)
            assert b.read("VND1CTRL/Q0XCBR1.OpCnt.stVal", "ST") == 1


def test_one_ied_of_an_scd_is_served(tmp_path):
    """An SCD with two IEDs: iec61850.ied_name picks one, the other is ignored."""
    text = open(VENDOR).read()
    ied = text[text.index("  <IED "):text.index("</IED>") + len("</IED>")]
    scd = tmp_path / "station.scd"
    scd.write_text(text.replace("</IED>", "</IED>\n" + ied.replace('name="VND1"', 'name="VND2"'), 1))
    dev = Iec61850Device.model_validate({
        "name": "vnd2", "kind": "ied", "protocol": "iec61850", "port": free_port(),
        "iec61850": {"ied_name": "VND2", "scl": str(scd)},
        "points": [{"name": "P", "reference": "VND2CTRL/MMXU1.TotW.mag.f",
                    "measurement": {"equipment": "S1/F1/CB1", "type": "ThreePhaseActivePower"}}],
    })
    with IedProcess(dev), Browser("127.0.0.1", dev.port) as b:
        assert b.lds() == ["VND2CTRL"]
        assert b.read("VND2CTRL/LLN0.NamPlt.swRev", "DC") == "5.2.1"


def _broken(tmp_path, old: str, new: str) -> str:
    text = open(VENDOR).read()
    assert old in text
    p = tmp_path / "bad.icd"
    p.write_text(text.replace(old, new, 1))
    return str(p)


@pytest.mark.parametrize(
    "old, new, words",
    [
        ('<DO name="TotW" type="ACME_MV"/>', '<DO name="TotW" type="ACME_NOPE"/>',
         ["bad.icd: line ", '<DO name="TotW" type="ACME_NOPE">', "DOType 'ACME_NOPE'"]),
        ('<DAI name="stVal"><Val>on</Val></DAI><DAI name="ctlModel">', '<DAI name="stVal"><Val>onn</Val></DAI><DAI name="ctlModel">',
         ['<DAI name="stVal">', "'onn' is not a value of EnumType BehaviourModeKind"]),
        ('<FCDA ldInst="CTRL" lnClass="MMXU" lnInst="1" doName="PhV" fc="MX"/>',
         '<FCDA ldInst="CTRL" lnClass="MMXU" lnInst="1" doName="PhW" fc="MX"/>', ["<FCDA", "MMXU1.PhW", "does not have"]),
        ('<DA name="db" bType="INT32U" fc="CF" dchg="true"/>\n      <DA name="zeroDb"',
         '<DA name="db" bType="INT32U" fc="CF" count="3"/>\n      <DA name="zeroDb"', ['<DA name="db"', "array"]),
        ("</IED>", "</IED><IED name='VND2'/>", ["2 IEDs (VND1, VND2)", "iec61850.ied_name"]),
        ("<LN0 ", "<LN0 <", ["not well-formed XML"]),
    ],
)
def test_bad_scl_names_line_and_element(tmp_path, old: str, new: str, words: list[str]):
    path = _broken(tmp_path, old, new)
    ied_name = None if "VND2" in new else "VND1"
    dev = Iec61850Device.model_validate({
        "name": "vnd", "kind": "ied", "protocol": "iec61850", "port": free_port(),
        "iec61850": {"ied_name": ied_name, "scl": path},
        "points": [{"name": "P", "reference": "VND1CTRL/MMXU1.TotW.mag.f",
                    "measurement": {"equipment": "S1/F1/CB1", "type": "ThreePhaseActivePower"}}],
    })
    with pytest.raises(ModelError) as e:
        Iec61850Ied(dev).start()
    for w in words:
        assert w in str(e.value), str(e.value)


def test_structural_check_reports_broken_references(tmp_path):
    path = _broken(tmp_path, 'datSet="Status" confRev="1" buffered="false"', 'datSet="Nope" confRev="1" buffered="false"')
    problems = check(etree.parse(path))
    assert any("datSet 'Nope' is not a DataSet of this LN" in p and "line " in p for p in problems)
    path = _broken(tmp_path, '<DAI name="stVal"><Val>Ok</Val></DAI></DOI>\n            <DOI name="NamPlt">',
                   '<DAI name="stVal"><Val>Fine</Val></DAI></DOI>\n            <DOI name="NamPlt">')
    assert any("Val 'Fine' is not in EnumType HealthKind" in p for p in check(etree.parse(path)))


def test_a_users_cfg_model_exports_its_structure():
    dev = Iec61850Device.model_validate({
        "name": "own", "kind": "ied", "protocol": "iec61850", "port": free_port(),
        "iec61850": {"ied_name": "OWN", "scl": os.path.join(HERE, "data", "own_model.cfg")},
        "points": [{"name": "P", "reference": "OWNLD0/MMXU1.TotW.mag.f",
                    "measurement": {"equipment": "S1/F1/CB1", "type": "ThreePhaseActivePower"}}],
    })
    doc = etree.fromstring(to_bytes(export_device(dev)))
    assert check(etree.ElementTree(doc)) == []
    assert doc.xpath("//s:LDevice/@inst", namespaces=NS) == ["LD0"]
    assert doc.xpath("//s:LN/@lnClass", namespaces=NS) == ["MMXU", "GGIO"]
    assert doc.xpath("//s:DOType[@cdc='MV']/s:DA/@name", namespaces=NS) == ["mag", "q", "t"]
