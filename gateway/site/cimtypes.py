"""CIM measurement-type tables and mRID rules, without pydantic: a running gateway (catalog, command
values) needs these but not the site model (gateway/site/model.py re-exports them)."""

from __future__ import annotations

import uuid
from hashlib import sha1
from typing import Literal

#: namespace of derived mRIDs; changing it changes every derived mRID, so never change it
MRID_NAMESPACE = uuid.UUID("6f2f1a0e-6a53-5c9e-9b1e-677269646761")


def uuid5_text(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))`` without the two UUID objects: a first start computes
    two per point (the measurement's and its value's mRID; 10,000 points: 0.08 → 0.03 CPU-s).
    tests/core/test_uuid5_text.py compares both."""
    h = bytearray(sha1(namespace + name.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def uuid_bytes(text: str) -> bytes:
    """The 16 bytes of a canonical UUID text (a namespace for :func:`uuid5_text`)."""
    return bytes.fromhex(text.replace("-", ""))

MeasurementKind = Literal["Analog", "Discrete", "Accumulator"]
MeasurementType = Literal[
    # IEC 61970-452 (CGMES) / IEC 61970-301 measurementType names
    "ThreePhaseActivePower",
    "ThreePhaseReactivePower",
    "ThreePhaseApparentPower",
    "ThreePhasePower",
    "ThreePhaseCurrent",
    "ThreePhasePowerFactor",
    "ActivePower",
    "ReactivePower",
    "ApparentPower",
    "PowerFactor",
    "LineCurrent",
    "PhaseCurrent",
    "Current",
    "PhaseVoltage",
    "LineToLineVoltage",
    "LineToNeutralVoltage",
    "LineToGroundVoltage",
    "Angle",
    "Frequency",
    "Temperature",
    "Pressure",
    "TapPosition",
    "ActiveEnergy",
    "ReactiveEnergy",
    "ApparentEnergy",
    "OperationCount",
    "SwitchPosition",
    "LocalOperation",
    "Automatic",
    # gridgate v1's name for a line-to-line voltage (CIM: LineToLineVoltage); kept so existing topics stay
    "Voltage",
    # gridgate extensions (not in the CGMES list): protection pick-up and trip, 0/1 Discretes
    "ProtectionStart",
    "ProtectionOperate",
    # gridgate extensions: the automatic voltage control relay's state (docs/avc-state-points.md); its
    # auto/manual switch is CIM's Automatic
    "AvcState",
    "AvcInBand",
    "AvcRaisePending",
    "AvcLowerPending",
    "AvcTimeDelay",
    "AvcBlocked",
    "AvcLockout",
]
#: the AVC relay's 0/1 state types (AvcState is the 0..5 code)
AVC_FLAG_TYPES = ("AvcInBand", "AvcRaisePending", "AvcLowerPending", "AvcTimeDelay", "AvcBlocked", "AvcLockout")
UnitSymbol = Literal["W", "VAr", "VA", "A", "V", "Hz", "deg", "Wh", "VArh", "VAh", "degC", "Pa", "cosPhi", "none"]
UnitMultiplier = Literal["none", "k", "M"]
PhaseCode = Literal[
    "ABCN", "ABC", "ABN", "ACN", "BCN", "AB", "AC", "BC", "AN", "BN", "CN", "A", "B", "C", "N", "s1N", "s2N", "s12N", "s1", "s2", "s12", "none"
]
EquipmentType = Literal[
    "PowerTransformer", "Breaker", "Disconnector", "BusbarSection", "ACLineSegment", "EnergyConsumer", "LoadBreakSwitch", "Fuse",
    "EnergySource",
]
#: IEC 61850 double-point codes used for SwitchPosition values
SWITCH_POSITIONS = {0: "intermediate", 1: "open", 2: "closed", 3: "bad"}

#: measurementType → (CIM class it belongs to, allowed unit symbols, the first being the default)
_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ThreePhaseActivePower": ("Analog", ("W",)),
    "ThreePhaseReactivePower": ("Analog", ("VAr",)),
    "ThreePhaseApparentPower": ("Analog", ("VA",)),
    "ThreePhasePower": ("Analog", ("VA",)),
    "ThreePhaseCurrent": ("Analog", ("A",)),
    "ThreePhasePowerFactor": ("Analog", ("none", "cosPhi")),
    "ActivePower": ("Analog", ("W",)),
    "ReactivePower": ("Analog", ("VAr",)),
    "ApparentPower": ("Analog", ("VA",)),
    "PowerFactor": ("Analog", ("none", "cosPhi")),
    "LineCurrent": ("Analog", ("A",)),
    "PhaseCurrent": ("Analog", ("A",)),
    "Current": ("Analog", ("A",)),
    "PhaseVoltage": ("Analog", ("V",)),
    "LineToLineVoltage": ("Analog", ("V",)),
    "LineToNeutralVoltage": ("Analog", ("V",)),
    "LineToGroundVoltage": ("Analog", ("V",)),
    "Voltage": ("Analog", ("V",)),
    "Angle": ("Analog", ("deg",)),
    "Frequency": ("Analog", ("Hz",)),
    "Temperature": ("Analog", ("degC",)),
    "Pressure": ("Analog", ("Pa",)),
    "TapPosition": ("Discrete", ("none",)),
    "ActiveEnergy": ("Accumulator", ("Wh",)),
    "ReactiveEnergy": ("Accumulator", ("VArh",)),
    "ApparentEnergy": ("Accumulator", ("VAh",)),
    "OperationCount": ("Accumulator", ("none",)),
    "SwitchPosition": ("Discrete", ("none",)),
    "LocalOperation": ("Discrete", ("none",)),
    "Automatic": ("Discrete", ("none",)),
    "ProtectionStart": ("Discrete", ("none",)),
    "ProtectionOperate": ("Discrete", ("none",)),
    "AvcState": ("Discrete", ("none",)),
    **{t: ("Discrete", ("none",)) for t in AVC_FLAG_TYPES},
}
#: which kind each measurementType belongs to (CGMES)
KIND_OF_TYPE: dict[str, str] = {t: k for t, (k, _) in _TYPES.items()}
UNITS_OF_TYPE: dict[str, tuple[str, ...]] = {t: u for t, (_, u) in _TYPES.items()}
#: namespace prefix of gridgate's own measurementTypes where CIM's name is published (``cimMeasurementType``, CGMES export)
EXTENSION_PREFIX = "x-gridgate:"
#: gridgate measurementType → the CIM (IEC 61970-452) name, where they differ: the v1 name and the extensions
CIM_TYPE_OF: dict[str, str] = {
    "Voltage": "LineToLineVoltage",
    "ProtectionStart": EXTENSION_PREFIX + "ProtectionStart",
    "ProtectionOperate": EXTENSION_PREFIX + "ProtectionOperate",
    **{t: EXTENSION_PREFIX + t for t in ("AvcState",) + AVC_FLAG_TYPES},
}


def cim_measurement_type(t: str) -> str:
    """CIM's name of a gridgate measurementType (``Voltage`` → ``LineToLineVoltage``, extensions prefixed)."""
    return CIM_TYPE_OF.get(t, t)
