"""ctypes bindings to the libiec61850 shared library bundled with pyiec61850-ng.

Why ctypes and not the SWIG module: ctypes releases the GIL for every foreign call and
re-acquires it in callbacks, so a report or control callback on libiec61850's own thread
can never deadlock against a blocking call (the SWIG API holds the GIL while it blocks).
Only the functions gridgate uses are declared; constants mirror libiec61850 1.6.
"""

from __future__ import annotations

import ctypes as C
import glob
import os
import struct
from functools import lru_cache

# ---------------------------------------------------------------- constants (libiec61850 1.6)

FC = {"ST": 0, "MX": 1, "SP": 2, "SV": 3, "CF": 4, "DC": 5, "SG": 6, "SE": 7, "SR": 8, "OR": 9, "BL": 10, "EX": 11, "CO": 12}
MMS_STRUCTURE, MMS_BOOLEAN, MMS_BIT_STRING, MMS_INTEGER, MMS_UNSIGNED, MMS_FLOAT = 1, 2, 3, 4, 5, 6
MMS_OCTET_STRING, MMS_UTC_TIME, MMS_DATA_ACCESS_ERROR = 7, 14, 15
IEC61850_BOOLEAN, IEC61850_INT32, IEC61850_INT64, IEC61850_INT32U = 0, 3, 4, 9
IEC61850_FLOAT32, IEC61850_FLOAT64, IEC61850_ENUMERATED, IEC61850_CODEDENUM = 10, 11, 12, 25
CTL_DIRECT_NORMAL, CTL_SBO_NORMAL, CTL_DIRECT_ENHANCED, CTL_SBO_ENHANCED = 1, 2, 3, 4
TRG_DCHG, TRG_QCHG, TRG_DUPD, TRG_INTEGRITY, TRG_GI = 1, 2, 4, 8, 16
RPT_OPT_SEQ_NUM, RPT_OPT_TIME_STAMP, RPT_OPT_REASON, RPT_OPT_DATA_SET = 1, 2, 4, 8
RPT_OPT_DATA_REF, RPT_OPT_BUF_OVFL, RPT_OPT_ENTRY_ID, RPT_OPT_CONF_REV = 16, 32, 64, 128
RCB_RPT_ID, RCB_RPT_ENA, RCB_RESV, RCB_DATSET, RCB_OPT_FLDS, RCB_TRG_OPS = 1, 2, 4, 8, 32, 256
RCB_INTG_PD, RCB_GI, RCB_PURGE_BUF, RCB_ENTRY_ID = 512, 1024, 2048, 4096
REASON_DATA_CHANGE, REASON_QUALITY_CHANGE, REASON_DATA_UPDATE, REASON_INTEGRITY, REASON_GI = 1, 2, 4, 8, 16
IED_STATE_CONNECTED = 2
ACSI_CLASS_BRCB, ACSI_CLASS_URCB = 2, 3
CONTROL_RESULT_FAILED, CONTROL_RESULT_OK, CONTROL_RESULT_WAITING = 0, 1, 2
CONTROL_ACCEPTED, CONTROL_OBJECT_UNDEFINED = -1, 3  # CheckHandlerResult

IED_ERRORS = {
    0: "ok", 1: "not connected", 2: "already connected", 3: "connection lost", 4: "service not supported",
    5: "connection rejected", 6: "outstanding call limit reached", 10: "user provided invalid argument",
    11: "enable report failed: dataset mismatch", 12: "object reference invalid", 13: "unexpected value received",
    20: "timeout", 21: "access denied", 22: "object does not exist", 23: "object exists", 24: "object access unsupported",
    25: "type inconsistent", 26: "temporarily unavailable", 27: "object undefined", 28: "invalid address",
    29: "hardware fault", 30: "type unsupported", 31: "object attribute inconsistent", 32: "object value invalid",
    33: "object invalidated", 34: "malformed message", 98: "service not implemented", 99: "unknown",
}
ADD_CAUSES = {
    0: "Unknown", 1: "Not-supported", 2: "Blocked-by-switching-hierarchy", 3: "Select-failed", 4: "Invalid-position",
    5: "Position-reached", 6: "Parameter-change-in-execution", 7: "Step-limit", 8: "Blocked-by-Mode",
    9: "Blocked-by-process", 10: "Blocked-by-interlocking", 11: "Blocked-by-synchrocheck",
    12: "Command-already-in-execution", 13: "Blocked-by-health", 14: "1-of-n-control", 15: "Abortion-by-cancel",
    16: "Time-limit-over", 17: "Abortion-by-trip", 18: "Object-not-selected", 19: "Object-already-selected",
    20: "No-access-authority", 21: "Ended-with-overshoot", 22: "Abortion-due-to-deviation",
    23: "Abortion-by-communication-loss", 24: "Abortion-by-command", 25: "None", 26: "Inconsistent-parameters",
    27: "Locked-by-other-client",
}
ADD_CAUSE_BLOCKED_BY_PROCESS = 9

P = C.c_void_p
ReportCallback = C.CFUNCTYPE(None, P, P)
TerminationHandler = C.CFUNCTYPE(None, P, P)
ControlHandler = C.CFUNCTYPE(C.c_int, P, P, P, C.c_bool)
CheckHandler = C.CFUNCTYPE(C.c_int, P, P, P, C.c_bool, C.c_bool)


class LastApplError(C.Structure):
    _fields_ = [("ctlNum", C.c_int), ("error", C.c_int), ("addCause", C.c_int)]


class Timestamp(C.Structure):
    _fields_ = [("val", C.c_uint8 * 8)]


#: bool (*)(param, ClientConnection, ACSIClass, LogicalDevice*, LogicalNode*, objectName, subObjectName, accessType)
ControlBlockAccessHandler = C.CFUNCTYPE(C.c_bool, P, P, C.c_int, P, P, C.c_char_p, C.c_char_p, C.c_int)
CB_ACCESS_WRITE = 1


_SIGS: dict[str, tuple[object, list[object]]] = {
    # values
    "MmsValue_getType": (C.c_int, [P]),
    "MmsValue_toFloat": (C.c_float, [P]),
    "MmsValue_toDouble": (C.c_double, [P]),
    "MmsValue_toInt64": (C.c_int64, [P]),
    "MmsValue_toUint32": (C.c_uint32, [P]),
    "MmsValue_getBoolean": (C.c_bool, [P]),
    "MmsValue_getBitStringSize": (C.c_int, [P]),
    "MmsValue_getBitStringAsInteger": (C.c_uint32, [P]),
    "MmsValue_getElement": (P, [P, C.c_int]),
    "MmsValue_getArraySize": (C.c_uint32, [P]),
    "MmsValue_getUtcTimeBuffer": (C.POINTER(C.c_uint8), [P]),
    "MmsValue_getOctetStringSize": (C.c_uint16, [P]),
    "MmsValue_getOctetStringBuffer": (C.POINTER(C.c_uint8), [P]),
    "MmsValue_getDataAccessError": (C.c_int, [P]),
    "MmsValue_delete": (None, [P]),
    "MmsValue_newBoolean": (P, [C.c_bool]),
    "MmsValue_newFloat": (P, [C.c_float]),
    "MmsValue_newIntegerFromInt32": (P, [C.c_int32]),
    "MmsValue_newOctetString": (P, [C.c_int, C.c_int]),
    "MmsValue_setOctetString": (None, [P, C.c_char_p, C.c_int]),
    "Quality_fromMmsValue": (C.c_uint16, [P]),
    "Dbpos_fromMmsValue": (C.c_int, [P]),
    "LinkedList_getNext": (P, [P]),
    "LinkedList_getData": (P, [P]),
    "LinkedList_destroy": (None, [P]),
    "MmsVariableSpecification_getChildSpecificationByName": (P, [P, C.c_char_p, C.POINTER(C.c_int)]),
    "MmsVariableSpecification_destroy": (None, [P]),
    # client
    "IedConnection_create": (P, []),
    "IedConnection_createEx": (P, [P, C.c_bool]),
    "IedConnection_tick": (C.c_bool, [P]),
    "IedConnection_destroy": (None, [P]),
    "IedConnection_setConnectTimeout": (None, [P, C.c_uint32]),
    "IedConnection_setRequestTimeout": (None, [P, C.c_uint32]),
    "IedConnection_connect": (None, [P, C.POINTER(C.c_int), C.c_char_p, C.c_int]),
    "IedConnection_close": (None, [P]),
    "IedConnection_abort": (None, [P, C.POINTER(C.c_int)]),
    "IedConnection_getState": (C.c_int, [P]),
    "IedConnection_readObject": (P, [P, C.POINTER(C.c_int), C.c_char_p, C.c_int]),
    "IedConnection_getVariableSpecification": (P, [P, C.POINTER(C.c_int), C.c_char_p, C.c_int]),
    "IedConnection_getDataSetDirectory": (P, [P, C.POINTER(C.c_int), C.c_char_p, C.POINTER(C.c_bool)]),
    "IedConnection_getLogicalNodeDirectory": (P, [P, C.POINTER(C.c_int), C.c_char_p, C.c_int]),
    "IedConnection_getRCBValues": (P, [P, C.POINTER(C.c_int), C.c_char_p, P]),
    "IedConnection_setRCBValues": (None, [P, C.POINTER(C.c_int), P, C.c_uint32, C.c_bool]),
    "IedConnection_installReportHandler": (None, [P, C.c_char_p, C.c_char_p, ReportCallback, P]),
    "IedConnection_uninstallReportHandler": (None, [P, C.c_char_p]),
    "IedConnection_triggerGIReport": (None, [P, C.POINTER(C.c_int), C.c_char_p]),
    "ClientReportControlBlock_destroy": (None, [P]),
    "ClientReportControlBlock_getRptId": (C.c_char_p, [P]),
    "ClientReportControlBlock_getDataSetReference": (C.c_char_p, [P]),
    "ClientReportControlBlock_getRptEna": (C.c_bool, [P]),
    "ClientReportControlBlock_getResv": (C.c_bool, [P]),
    "ClientReportControlBlock_isBuffered": (C.c_bool, [P]),
    "ClientReportControlBlock_setRptEna": (None, [P, C.c_bool]),
    "ClientReportControlBlock_setResv": (None, [P, C.c_bool]),
    "ClientReportControlBlock_setGI": (None, [P, C.c_bool]),
    "ClientReportControlBlock_setPurgeBuf": (None, [P, C.c_bool]),
    "ClientReportControlBlock_setTrgOps": (None, [P, C.c_int]),
    "ClientReportControlBlock_setOptFlds": (None, [P, C.c_int]),
    "ClientReportControlBlock_setIntgPd": (None, [P, C.c_uint32]),
    "ClientReportControlBlock_setEntryId": (None, [P, P]),
    "ClientReport_getDataSetValues": (P, [P]),
    "ClientReport_getReasonForInclusion": (C.c_int, [P, C.c_int]),
    "ClientReport_getEntryId": (P, [P]),
    "ClientReport_hasBufOvfl": (C.c_bool, [P]),
    "ClientReport_getBufOvfl": (C.c_bool, [P]),
    "ClientReport_getRcbReference": (C.c_char_p, [P]),
    "ControlObjectClient_create": (P, [C.c_char_p, P]),
    "ControlObjectClient_destroy": (None, [P]),
    "ControlObjectClient_getControlModel": (C.c_int, [P]),
    "ControlObjectClient_setControlModel": (None, [P, C.c_int]),
    "ControlObjectClient_setOrigin": (None, [P, C.c_char_p, C.c_int]),
    "ControlObjectClient_operate": (C.c_bool, [P, P, C.c_uint64]),
    "ControlObjectClient_selectWithValue": (C.c_bool, [P, P]),
    "ControlObjectClient_getLastApplError": (LastApplError, [P]),
    "ControlObjectClient_getLastError": (C.c_int, [P]),
    "ControlObjectClient_getCtlValType": (C.c_int, [P]),
    "ControlObjectClient_setCommandTerminationHandler": (None, [P, TerminationHandler, P]),
    # server
    "IedModel_create": (P, [C.c_char_p]),
    "IedModel_destroy": (None, [P]),
    "IedModel_getLogicalDeviceCount": (C.c_int, [P]),
    "IedModel_getModelNodeByObjectReference": (P, [P, C.c_char_p]),
    "IedModel_setIedNameForDynamicModel": (None, [P, C.c_char_p]),
    "LogicalDevice_createEx": (P, [C.c_char_p, P, C.c_char_p]),
    "LogicalNode_create": (P, [C.c_char_p, P]),
    "ModelNode_getChild": (P, [P, C.c_char_p]),
    "DataAttribute_getType": (C.c_int, [P]),
    "DataSet_create": (P, [C.c_char_p, P]),
    "DataSetEntry_create": (P, [P, C.c_char_p, C.c_int, C.c_char_p]),
    "ReportControlBlock_create": (P, [C.c_char_p, P, C.c_char_p, C.c_bool, C.c_char_p, C.c_uint32, C.c_uint8, C.c_uint8, C.c_uint32, C.c_uint32]),
    "ConfigFileParser_createModelFromConfigFileEx": (P, [C.c_char_p]),
    "IedServerConfig_create": (P, []),
    "IedServerConfig_destroy": (None, [P]),
    "IedServerConfig_setReportBufferSize": (None, [P, C.c_int]),
    "IedServerConfig_setMaxMmsConnections": (None, [P, C.c_int]),
    "IedServer_createWithConfig": (P, [P, P, P]),
    "IedServer_destroy": (None, [P]),
    "IedServer_setLocalIpAddress": (None, [P, C.c_char_p]),
    "IedServer_start": (None, [P, C.c_int]),
    "IedServer_stop": (None, [P]),
    "IedServer_isRunning": (C.c_bool, [P]),
    "IedServer_getNumberOfOpenConnections": (C.c_int, [P]),
    "IedServer_lockDataModel": (None, [P]),
    "IedServer_unlockDataModel": (None, [P]),
    "IedServer_updateFloatAttributeValue": (None, [P, P, C.c_float]),
    "IedServer_updateInt32AttributeValue": (None, [P, P, C.c_int32]),
    "IedServer_updateInt64AttributeValue": (None, [P, P, C.c_int64]),
    "IedServer_updateUnsignedAttributeValue": (None, [P, P, C.c_uint32]),
    "IedServer_updateBooleanAttributeValue": (None, [P, P, C.c_bool]),
    "IedServer_updateDbposValue": (None, [P, P, C.c_int]),
    "IedServer_updateQuality": (None, [P, P, C.c_uint16]),
    "IedServer_updateTimestampAttributeValue": (None, [P, P, C.POINTER(Timestamp)]),
    "IedServer_updateCtlModel": (None, [P, P, C.c_int]),
    "IedServer_setControlHandler": (None, [P, P, ControlHandler, P]),
    "IedServer_setPerformCheckHandler": (None, [P, P, CheckHandler, P]),
    "Timestamp_setTimeInNanoseconds": (None, [C.POINTER(Timestamp), C.c_uint64]),
    "ControlAction_setAddCause": (None, [P, C.c_int]),
    "ControlAction_isSelect": (C.c_bool, [P]),
    # server-side hooks and value setters the emulated IEDs use (report suppression, fault faithful values)
    "IedServer_getAttributeValue": (P, [P, P]),
    "IedServer_setControlBlockAccessHandler": (None, [P, ControlBlockAccessHandler, P]),
    "MmsValue_setFloat": (None, [P, C.c_float]),
    "MmsValue_setInt32": (None, [P, C.c_int32]),
    "MmsValue_setInt64": (None, [P, C.c_int64]),
    "MmsValue_setUint32": (None, [P, C.c_uint32]),
    "MmsValue_setBoolean": (None, [P, C.c_bool]),
    "MmsValue_setBitStringFromInteger": (None, [P, C.c_uint32]),
    "MmsValue_setUtcTimeMs": (P, [P, C.c_uint64]),
    "Dbpos_toMmsValue": (P, [P, C.c_int]),
}


def library_path() -> str:
    import pyiec61850  # noqa: F401  (locates the wheel; the SWIG module itself is not used)

    base = os.path.dirname(os.path.dirname(os.path.abspath(pyiec61850.__file__)))
    found = sorted(glob.glob(os.path.join(base, "pyiec61850_ng.libs", "libiec61850*.so*")))
    found += sorted(glob.glob(os.path.join(base, "pyiec61850", "libiec61850*.so*")))
    if not found:
        raise OSError("libiec61850 shared library not found in the pyiec61850-ng wheel; pip install pyiec61850-ng==1.6.1.10")
    return found[0]


@lru_cache(maxsize=1)
def lib() -> C.CDLL:
    """The bundled libiec61850 with typed prototypes (loaded once per process)."""
    dll = C.CDLL(library_path())
    for name, (res, args) in _SIGS.items():
        f = getattr(dll, name)
        f.restype = res
        f.argtypes = args
    return dll


# ---------------------------------------------------------------- MmsValue decoding (plain functions)


def utc_time(v: int) -> float:
    """An MMS UtcTime (seconds + 24-bit fraction) as epoch seconds, rounded to the microsecond."""
    b = bytes(lib().MmsValue_getUtcTimeBuffer(v)[:8])
    secs, frac = struct.unpack(">I", b[:4])[0], int.from_bytes(b[4:7], "big")
    return round(secs + frac / 16777216.0, 6)


def scalar(v: int) -> float | int | bool | None:
    """A primitive MmsValue as Python; Dbpos bit strings as their 0..3 code."""
    L = lib()
    t = L.MmsValue_getType(v)
    if t == MMS_FLOAT:
        x = L.MmsValue_toDouble(v)
        f32 = struct.unpack("f", struct.pack("f", x))[0] if abs(x) < 3.4e38 else None
        return float(f"{x:.7g}") if f32 == x else x  # FLOAT32: the value as written, not 50.020000457
    if t == MMS_INTEGER:
        return L.MmsValue_toInt64(v)
    if t == MMS_UNSIGNED:
        return L.MmsValue_toUint32(v)
    if t == MMS_BOOLEAN:
        return bool(L.MmsValue_getBoolean(v))
    if t == MMS_BIT_STRING:
        return L.Dbpos_fromMmsValue(v) if L.MmsValue_getBitStringSize(v) == 2 else L.MmsValue_getBitStringAsInteger(v)
    if t == MMS_UTC_TIME:
        return utc_time(v)
    return None


def element(v: int | None, path: tuple[int, ...]) -> int | None:
    L = lib()
    for i in path:
        if not v:
            return None
        v = L.MmsValue_getElement(v, i)
    return v


def octets(v: int) -> bytes:
    L = lib()
    n = L.MmsValue_getOctetStringSize(v)
    return bytes(L.MmsValue_getOctetStringBuffer(v)[:n]) if n else b""


def string_list(ll: int | None) -> list[str]:
    """A LinkedList of char* as str, and free it."""
    L = lib()
    out: list[str] = []
    if not ll:
        return out
    e = L.LinkedList_getNext(ll)
    while e:
        d = L.LinkedList_getData(e)
        if d:
            out.append(C.string_at(d).decode())
        e = L.LinkedList_getNext(e)
    L.LinkedList_destroy(ll)
    return out
