"""CGMES 3.0 vocabulary: namespaces, profile URIs, and the mapping of gridgate's names onto CIM's.

gridgate's unit symbols, multipliers and phase codes are CIM enumeration literals already;
its measurement types follow IEC 61970-452 except ``Voltage`` (CGMES: ``LineToLineVoltage``)
and its own protection extensions, which are written with an ``x-gridgate:`` prefix so a
CGMES consumer can tell them from the standard list.
"""

from __future__ import annotations

import uuid

from gateway.site.model import CIM_TYPE_OF, KIND_OF_TYPE, MRID_NAMESPACE, UnitSymbol, cim_measurement_type

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
CIM = "http://iec.ch/TC57/CIM100#"
MD = "http://iec.ch/TC57/61970-552/ModelDescription/1#"
EU = "http://iec.ch/TC57/CIM100-European#"
NSMAP = {"cim": CIM, "md": MD, "eu": EU, "rdf": RDF}
#: earlier CIM namespaces (CGMES 2.4.15 uses CIM16) that the reader also accepts
CIM_NAMESPACES = (CIM, "http://iec.ch/TC57/2013/CIM-schema-cim16#", "http://iec.ch/TC57/CIM-schema-cim17#")

PROFILES = {
    "eq": "http://iec.ch/TC57/ns/CIM/CoreEquipment-EU/3.0",
    "op": "http://iec.ch/TC57/ns/CIM/Operation-EU/3.0",
}

#: CGMES measurementType → gridgate's, where they differ: the extensions (``LineToLineVoltage`` is a gridgate
#: type of its own; ``Voltage`` is its v1 alias)
TYPE_FROM_CGMES = {v: k for k, v in CIM_TYPE_OF.items() if k != "Voltage"}

UNIT_SYMBOLS: tuple[str, ...] = UnitSymbol.__args__  # type: ignore[attr-defined]
#: the other CIM UnitSymbol literals (IEC 61970-301): a measurement in one of them is skipped on import
#: with a note (gridgate has no such measurement); a literal in neither list is an error
CIM_UNIT_SYMBOLS = frozenset(UNIT_SYMBOLS) | frozenset("""
    m kg s K mol cd rad sr Gy Bq degC Sv F C S H ohm J N lx lm Wb T Pa m2 m3 mPers mPers2 m3Pers mPerm3 kgm kgPerm3
    m2Pers WPermK JPerK ppm rotPers radPers WPerm2 JPerm2 SPerm KPers PaPers JPerkgK cosPhi Vs V2 As A2 A2s VAh VPerHz
    HzPers character charPers kgm2 dB WPers lPers dBm h min Q Qh ohmm APerm V2h A2h Ah count ft3 m3Perh gal Btu l lPerh
    lPerl gPerg molPerm3 molPermol molPerkg sPers HzPerHz VPerV APerA VPerVA rev kat JPerkg m3Uncompensated
    m3Compensated WPerW therm onePerm m3Perkg Pas Nm NPerm radPers2 WPerm2sr WPersr bps JPerm3 VPerm CPerm3 CPerm2 FPerm
    HPerm JPermol JPermolK CPerkg GyPers katPerm3 d anglemin anglesec ha tonne bar mmHg M nmi kn Mx G Oe Vh WPerA
    onePerHz VPerVAr ohmPerm kgPerJ JPers VArPerW
""".split())
UNIT_MULTIPLIERS = ("none", "k", "M")
CIM_UNIT_MULTIPLIERS = frozenset("y z a f p n micro m c d none da h k M G T P E Z Y".split())

#: measurement classes and the gridgate kind each is
MEASUREMENT_CLASSES = {"Analog": "Analog", "Discrete": "Discrete", "Accumulator": "Accumulator"}

#: gridgate equipment type → CGMES class (same names) and the number of terminals it has
TERMINALS = {"PowerTransformer": 2, "Breaker": 2, "Disconnector": 2, "LoadBreakSwitch": 2, "Fuse": 2,
             "BusbarSection": 1, "ACLineSegment": 2, "EnergyConsumer": 1}
SWITCHES = ("Breaker", "Disconnector", "LoadBreakSwitch", "Fuse")
FEEDER_ENDS = ("ACLineSegment", "EnergyConsumer")

#: classes the importer reads; all other classes are reported as ignored
READ_CLASSES = {
    "GeographicalRegion", "SubGeographicalRegion", "Substation", "VoltageLevel", "BaseVoltage", "Bay",
    "Terminal", "ConnectivityNode", "PowerTransformerEnd", "RatioTapChanger", "ExternalNetworkInjection",
    "EnergySource", *TERMINALS, *MEASUREMENT_CLASSES,
}
#: conducting equipment classes gridgate has no type for: named (with mRID) as unsupported on import
UNSUPPORTED_EQUIPMENT = {
    "SynchronousMachine", "AsynchronousMachine", "LinearShuntCompensator", "NonlinearShuntCompensator",
    "StaticVarCompensator", "SeriesCompensator", "Jumper", "GroundDisconnector", "Junction", "Ground",
    "PetersenCoil", "EquivalentInjection", "ConformLoad", "NonConformLoad", "PowerElectronicsConnection",
    "ProtectedSwitch", "Recloser", "Sectionaliser", "Switch", "DCLineSegment", "SolarGeneratingUnit",
}


def derived(site: str, *parts: str) -> uuid.UUID:
    """mRID of a CIM object gridgate's site model has no field for (voltage level, terminal, node, ...).

    UUID5 in gridgate's namespace of ``site/parts...``, like every other derived mRID, so an
    export is stable run to run.
    """
    return uuid.uuid5(MRID_NAMESPACE, "/".join((site, *parts)))


def cgmes_type(t: str) -> str:
    return cim_measurement_type(t)


def gridgate_type(t: str) -> str | None:
    """The gridgate measurementType of a CGMES one, or None if gridgate has none."""
    t = TYPE_FROM_CGMES.get(t, t)
    return t if t in KIND_OF_TYPE else None


def rid(u: uuid.UUID | str) -> str:
    """rdf:ID of an mRID (CGMES: an underscore and the UUID)."""
    return f"_{u}"
