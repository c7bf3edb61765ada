"""SCL vocabulary shared by export and import: basic types ↔ libiec61850 DA types, FCs, and the
enumerations (IEC 61850-7-3 Ed. 2 / 7-4 Ed. 2) the emulated IEDs serve, so SCL ``Val`` text is the
literal a real engineering tool expects ("on", "W", "sbo-with-enhanced-security")."""

from __future__ import annotations

#: bType → libiec61850 DataAttributeType
BTYPE_TO_DA = {
    "BOOLEAN": 0, "INT8": 1, "INT16": 2, "INT32": 3, "INT64": 4, "INT128": 5, "INT8U": 6, "INT16U": 7, "INT24U": 8,
    "INT32U": 9, "FLOAT32": 10, "FLOAT64": 11, "Enum": 12, "Octet64": 13, "VisString32": 16, "VisString64": 17,
    "VisString65": 18, "VisString129": 19, "VisString255": 20, "Unicode255": 21, "Timestamp": 22, "Quality": 23,
    "Check": 24, "Dbpos": 25, "Tcmd": 25, "Struct": 27, "EntryTime": 28, "ObjRef": 19,
}
DA_TO_BTYPE = {v: k for k, v in BTYPE_TO_DA.items() if k not in ("Tcmd", "ObjRef")}
DA_TO_BTYPE[14] = DA_TO_BTYPE[15] = "Octet64"
BTYPE_TO_DA["Octet6"] = 14
BTYPE_TO_DA["Octet8"] = 15

FCS = {"ST", "MX", "SP", "SV", "CF", "DC", "SG", "SE", "SR", "OR", "BL", "EX", "CO"}
FC_CODE = {"ST": 0, "MX": 1, "SP": 2, "SV": 3, "CF": 4, "DC": 5, "SG": 6, "SE": 7, "SR": 8, "OR": 9, "BL": 10,
           "EX": 11, "CO": 12}

_BEH = {1: "on", 2: "on-blocked", 3: "test", 4: "test/blocked", 5: "off"}
ENUMS: dict[str, dict[int, str]] = {
    "BehaviourModeKind": _BEH,
    "HealthKind": {1: "Ok", 2: "Warning", 3: "Alarm"},
    "CtlModelKind": {0: "status-only", 1: "direct-with-normal-security", 2: "sbo-with-normal-security",
                     3: "direct-with-enhanced-security", 4: "sbo-with-enhanced-security"},
    "FaultDirectionKind": {0: "unknown", 1: "forward", 2: "backward", 3: "both"},
    "OriginatorCategoryKind": {0: "not-supported", 1: "bay-control", 2: "station-control", 3: "remote-control",
                               4: "automatic-bay", 5: "automatic-station", 6: "automatic-remote", 7: "maintenance",
                               8: "process"},
    "SwitchFunctionKind": {1: "Load Break", 2: "Disconnector", 3: "Earthing Switch", 4: "High Speed Earthing Switch"},
    "RangeKind": {0: "normal", 1: "high", 2: "low", 3: "high-high", 4: "low-low"},
    "SIUnitKind": {1: "", 2: "m", 3: "kg", 4: "s", 5: "A", 6: "K", 7: "mol", 8: "cd", 9: "deg", 10: "rad", 11: "sr",
                   21: "Gy", 22: "Bq", 23: "°C", 24: "Sv", 25: "F", 26: "C", 27: "S", 28: "H", 29: "V", 30: "ohm",
                   31: "J", 32: "N", 33: "Hz", 34: "lx", 35: "Lm", 36: "Wb", 37: "T", 38: "W", 39: "Pa", 61: "VA",
                   62: "Watts", 63: "VAr", 64: "phi", 65: "cos(phi)", 66: "Vs", 67: "V²", 68: "As", 69: "A²",
                   70: "A²t", 71: "VAh", 72: "Wh", 73: "VArh", 74: "V/Hz"},
    "MultiplierKind": {-24: "y", -21: "z", -18: "a", -15: "f", -12: "p", -9: "n", -6: "µ", -3: "m", -2: "c",
                       -1: "d", 0: "", 1: "da", 2: "h", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E", 21: "Z",
                       24: "Y"},
}

#: which EnumType an Enum DA uses, by (DO name or "*", DA name); first match wins
ENUM_OF: list[tuple[str, str, str]] = [
    ("Mod", "stVal", "BehaviourModeKind"), ("Beh", "stVal", "BehaviourModeKind"),
    ("Health", "stVal", "HealthKind"), ("PhyHealth", "stVal", "HealthKind"), ("EEHealth", "stVal", "HealthKind"),
    ("SwTyp", "stVal", "SwitchFunctionKind"), ("*", "ctlModel", "CtlModelKind"), ("*", "dirGeneral", "FaultDirectionKind"),
    ("*", "orCat", "OriginatorCategoryKind"), ("*", "SIUnit", "SIUnitKind"), ("*", "multiplier", "MultiplierKind"),
    ("*", "range", "RangeKind"),
]


def enum_type(do: str, da: str) -> str | None:
    for d, a, t in ENUM_OF:
        if a == da and d in (do, "*"):
            return t
    return None
