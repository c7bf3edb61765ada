"""Bad CGMES input: one error line per problem, naming the element and its mRID; never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from lxml import etree

from gateway.cgmes.export import export
from gateway.cgmes.vocab import CIM, RDF
from gateway.cli import main
from gateway.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"
R = f"{{{RDF}}}resource"


@pytest.fixture(scope="module")
def doc() -> bytes:
    return export(load_config(EXAMPLE))["eq"]


def _first(root, cls: str, name: str | None = None):
    for el in root.iter(f"{{{CIM}}}{cls}"):
        if name is None or el.findtext(f"{{{CIM}}}IdentifiedObject.name") == name:
            return el
    raise AssertionError(f"no {cls} {name}")


def _mrid(el) -> str:
    return el.findtext(f"{{{CIM}}}IdentifiedObject.mRID")


def _run(tmp_path, capsys, data: bytes, name: str = "bad.xml") -> list[str]:
    p = tmp_path / name
    p.write_bytes(data)
    assert main(["cim", "import", str(p), "-o", str(tmp_path / "out.yaml")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and not (tmp_path / "out.yaml").exists()
    return err.strip().splitlines()


def _mutated(doc: bytes, change) -> bytes:
    root = etree.fromstring(doc)
    change(root)
    return etree.tostring(root)


def test_measurement_without_its_psr(tmp_path, capsys, doc):
    def drop(root):
        m = _first(root, "Analog", "T1_P")
        m.remove(m.find(f"{{{CIM}}}Measurement.PowerSystemResource"))
        drop.mrid = _mrid(m)
        m2 = _first(root, "Accumulator", "T1_IMPORT_KWH")
        m2.find(f"{{{CIM}}}Measurement.PowerSystemResource").set(R, "#_00000000-dead-4000-8000-000000000000")
        drop.mrid2 = _mrid(m2)

    lines = _run(tmp_path, capsys, _mutated(doc, drop))
    assert len(lines) == 2
    assert f"Analog 'T1_P' (mRID {drop.mrid})" in lines[0] and "PowerSystemResource is missing" in lines[0]
    assert f"Accumulator 'T1_IMPORT_KWH' (mRID {drop.mrid2})" in lines[1]
    assert "00000000-dead-4000-8000-000000000000 is not in the model" in lines[1]


def test_terminal_without_connectivity_node(tmp_path, capsys, doc):
    def drop(root):
        t = _first(root, "Terminal", "CB T1")
        t.remove(t.find(f"{{{CIM}}}Terminal.ConnectivityNode"))
        drop.mrid = _mrid(t)

    (line,) = _run(tmp_path, capsys, _mutated(doc, drop))
    assert line.startswith(f"error: Terminal 'CB T1' (mRID {drop.mrid}) at ") and "no ConnectivityNode" in line


def test_duplicate_mrids(tmp_path, capsys, doc):
    def dup(root):
        m = _first(root, "Analog", "T1_Q")
        root.append(copy.deepcopy(m))  # the same rdf:ID twice
        b = _first(root, "Breaker", "HVCB")
        other = copy.deepcopy(b)  # another rdf:ID with the same IdentifiedObject.mRID
        other.set(f"{{{RDF}}}ID", "_11111111-2222-4333-8444-555555555555")
        root.append(other)
        dup.m, dup.b = _mrid(m), _mrid(b)

    lines = _run(tmp_path, capsys, _mutated(doc, dup))
    assert any(f"duplicate mRID {dup.m}" in x and "Analog 'T1_Q'" in x for x in lines)
    assert any(f"duplicate mRID {dup.b}" in x and "Breaker 'HVCB'" in x for x in lines)


def test_unknown_unit_symbol(tmp_path, capsys, doc):
    def unit(root):
        m = _first(root, "Analog", "Hz")
        m.find(f"{{{CIM}}}Measurement.unitSymbol").set(R, f"{CIM}UnitSymbol.furlong")
        unit.mrid = _mrid(m)
        q = _first(root, "Analog", "Vab")
        q.find(f"{{{CIM}}}Measurement.unitMultiplier").set(R, f"{CIM}UnitMultiplier.kilo")
        unit.q = _mrid(q)

    lines = _run(tmp_path, capsys, _mutated(doc, unit))
    assert len(lines) == 2
    assert any(f"Analog 'Hz' (mRID {unit.mrid})" in x and "unknown unitSymbol 'furlong' (not a CIM UnitSymbol)" in x for x in lines)
    assert any(f"Analog 'Vab' (mRID {unit.q})" in x and "unknown unitMultiplier 'kilo'" in x for x in lines)


@pytest.mark.parametrize("data, says", [
    (b"<config><site>x</site></config>", "not a CIM RDF/XML file (root element <config>"),
    (b"{\"site\": 1}", "not well-formed XML"),
    (b"", "not well-formed XML"),
    (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="x"/></rdf:RDF>',
     "RDF/XML without CIM objects"),
])
def test_not_a_cim_file_is_one_line(tmp_path, capsys, data, says):
    (line,) = _run(tmp_path, capsys, data)
    assert line.startswith(f"error: {tmp_path / 'bad.xml'}: ") and says in line


def test_missing_file(tmp_path, capsys):
    assert main(["cim", "import", str(tmp_path / "nope.xml")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "nope.xml: cannot read (No such file or directory)" in line


def test_bay_without_voltage_level_and_equipment_without_container(tmp_path, capsys, doc):
    def drop(root):
        b = _first(root, "Bay", "F2")
        b.remove(b.find(f"{{{CIM}}}Bay.VoltageLevel"))
        e = _first(root, "ACLineSegment", "FDR")
        e.find(f"{{{CIM}}}Equipment.EquipmentContainer").set(R, "#_99999999-0000-4000-8000-000000000000")
        drop.b, drop.e = _mrid(b), _mrid(e)

    lines = _run(tmp_path, capsys, _mutated(doc, drop))
    assert any(f"Bay 'F2' (mRID {drop.b})" in x and "no VoltageLevel" in x for x in lines)
    assert any(f"ACLineSegment 'FDR' (mRID {drop.e})" in x and "99999999-0000-4000-8000-000000000000 is not in the model" in x
               for x in lines)
    assert len(lines) == 2


def test_external_entities_are_not_resolved(tmp_path):
    """A model is untrusted input: an XXE entity must not pull a local file into the site."""
    from gateway.cgmes.importer import build_site
    from gateway.cgmes.model import read

    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    src = (Path(__file__).parent / "data" / "brookfield-eq.xml").read_text()
    src = src.replace("<rdf:RDF xmlns:cim", f'<!DOCTYPE rdf:RDF [<!ENTITY s SYSTEM "file://{secret}">]>\n<rdf:RDF xmlns:cim', 1)
    src = src.replace("<cim:IdentifiedObject.name>BRK</cim:IdentifiedObject.name>",
                      "<cim:IdentifiedObject.name>BRK&s;</cim:IdentifiedObject.name>", 1)
    p = tmp_path / "xxe.xml"
    p.write_text(src)
    site = build_site(read([p])).site
    assert site["substations"][0]["name"] == "BRK" and "TOPSECRET" not in repr(site)


def test_voltage_level_without_base_voltage(tmp_path, capsys, doc):
    def drop(root):
        vl = _first(root, "VoltageLevel", "11kV")
        vl.remove(vl.find(f"{{{CIM}}}VoltageLevel.BaseVoltage"))
        drop.vl = _mrid(vl)

    (line,) = _run(tmp_path, capsys, _mutated(doc, drop))
    assert f"VoltageLevel '11kV' (mRID {drop.vl})" in line and "no BaseVoltage with a nominalVoltage" in line
