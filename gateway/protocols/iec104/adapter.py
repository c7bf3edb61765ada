"""The c104 (lib60870-C) adapter both sides share: ASDU types, values, quality descriptors, CP56Time2a
and APCI parameters between the site file and c104, plus the gaps of c104 2.2.1 filled here.

Gaps of c104 2.2.1 this module fills (the full list, with those filled in the driver and the emulated
RTU, is in this folder's README.md; each has a test in tests/iec104/):

- callbacks must carry c104's exact parameter names and annotations or c104 refuses them:
  :func:`point_callback` and friends build conforming wrappers around plain callables and make
  sure an exception never unwinds into the C thread (it is logged and counted);
- ``Point.transmit`` on the client answers True/False only, and in races answers True for a negative
  confirmation: the command outcome is read here from the confirmations themselves
  (:class:`Confirmations`, fed from the raw APDU stream) — positive/negative ACT_CON, ACT_TERM and
  the COT 44–47 refusals, each with its cause;
- c104 exposes no decoder for malformed frames: :func:`parse_apdu` checks the APCI and ASDU header
  so both sides count bad frames by reason instead of dropping them silently;
- c104's time stamps are naive datetimes in UTC: :func:`to_epoch` / :func:`from_epoch` convert.
"""

# no `from __future__ import annotations`: c104 checks the callbacks' annotations as real classes

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import c104

from gateway.protocols.iec104.config import COMMAND_OF, Iec104Device, Iec104Options, Iec104Point
from gateway.site.quality import Q, with_validity

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- ASDU types

TYPE_ID: dict[str, int] = {
    "M_SP_NA_1": 1, "M_DP_NA_1": 3, "M_ST_NA_1": 5, "M_ME_NB_1": 11, "M_ME_NC_1": 13, "M_IT_NA_1": 15,
    "M_SP_TB_1": 30, "M_DP_TB_1": 31, "M_ST_TB_1": 32, "M_ME_TE_1": 35, "M_ME_TF_1": 36, "M_IT_TB_1": 37,
    "C_SC_NA_1": 45, "C_DC_NA_1": 46, "C_RC_NA_1": 47, "C_SE_NB_1": 49, "C_SE_NC_1": 50,
    "C_IC_NA_1": 100, "C_CI_NA_1": 101, "C_CS_NA_1": 103,
}
TYPE_NAME: dict[int, str] = {v: k for k, v in TYPE_ID.items()}
#: every type id IEC 60870-5-104 defines (§7.2.1 of -101 plus the 104 additions): a frame with another is malformed
KNOWN_TYPE_IDS = frozenset([*range(1, 22), *range(30, 41), *range(45, 52), *range(58, 65), 70, *range(100, 108),
                            *range(110, 114), *range(120, 128)])
COT_NAMES = {1: "periodic", 3: "spontaneous", 5: "request", 6: "activation", 7: "activation confirmation",
             8: "deactivation", 9: "deactivation confirmation", 10: "activation termination",
             20: "interrogated by station", 37: "requested by general counter interrogation",
             44: "unknown type identification", 45: "unknown cause of transmission",
             46: "unknown common address of ASDU", 47: "unknown information object address"}
REFUSAL_COTS = {44, 45, 46, 47}


def kind_of(type_name: str) -> str:
    """single | double | step | scaled | float | counter."""
    return {"SP": "single", "DP": "double", "ST": "step", "IT": "counter"}.get(type_name[2:4]) or (
        "scaled" if type_name in ("M_ME_NB_1", "M_ME_TE_1") else "float")


def c104_type(name: str) -> Any:
    return getattr(c104.Type, name)


def command_type(p: Iec104Point) -> str:
    return COMMAND_OF[p.type]


# ---------------------------------------------------------------- quality


def quality_to_q(qds: int) -> int:
    """104 quality descriptor → gridgate quality bits: IV → INVALID, NT → QUESTIONABLE+oldData,
    SB → SUBSTITUTED, BL → operatorBlocked, OV → QUESTIONABLE+overFlow (IV wins over the others' validity)."""
    q = 0
    if qds & 0x01:
        q |= Q.OVERFLOW | Q.QUESTIONABLE
    if qds & 0x10:
        q |= Q.OPERATOR_BLOCKED
    if qds & 0x20:
        q |= Q.SUBSTITUTED
    if qds & 0x40:
        q |= Q.OLD_DATA | Q.QUESTIONABLE
    if qds & 0x80:
        q = with_validity(q, Q.INVALID)
    return int(q)


def q_to_quality(q: int) -> int:
    """gridgate quality bits → 104 quality descriptor byte (inverse of :func:`quality_to_q`)."""
    qds = 0
    validity = q & 0x3
    if validity == 0b10:
        qds |= 0x80
    if q & Q.OLD_DATA or (validity == 0b11 and not q & Q.OVERFLOW):
        qds |= 0x40
    if q & (Q.SUBSTITUTED | Q.DEFAULTED):
        qds |= 0x20
    if q & Q.OPERATOR_BLOCKED:
        qds |= 0x10
    if q & Q.OVERFLOW:
        qds |= 0x01
    return qds


def c104_quality(qds: int) -> Any:
    out = c104.Quality()
    for bit, flag in ((0x80, c104.Quality.Invalid), (0x40, c104.Quality.NonTopical), (0x20, c104.Quality.Substituted),
                      (0x10, c104.Quality.Blocked), (0x01, c104.Quality.Overflow)):
        if qds & bit:
            out = out | flag  # type: ignore[operator]  # c104 2.2.1 stub lacks Quality.__or__
    return out


def qds_of(quality: Any) -> int:
    """A c104 Quality or BinaryCounterQuality → the QDS byte (a counter's IV maps to IV, the rest is dropped)."""
    if quality is None:
        return 0
    if isinstance(quality, c104.BinaryCounterQuality):
        return 0x80 if quality.value & 0x80 or str(quality).find("Invalid") >= 0 else 0
    return int(quality.value)


# ---------------------------------------------------------------- time


def to_epoch(t: dt.datetime | None) -> float | None:
    """c104 time stamps are naive UTC datetimes (CP56Time2a carries no zone)."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def from_epoch(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


# ---------------------------------------------------------------- values


def to_engineering(p: Iec104Point, raw: Any) -> float | int | bool:
    """Raw 104 value (c104 object or number) → the Reading's value (scale/offset, value_map for discretes)."""
    kind = kind_of(p.type)
    if kind == "single":
        b = int(bool(raw))
        return p.value_map.get(b, b) if p.value_map else bool(b)
    if kind == "double":
        code = int(getattr(raw, "value", raw))
        return p.value_map.get(code, code) if p.value_map else code  # DPI codes = IEC 61850 Dbpos codes
    if kind == "step":
        return int(round(float(int(raw)) * p.scale + p.offset))
    if kind == "counter":
        return int(raw) * p.scale + p.offset if (p.scale, p.offset) != (1.0, 0.0) else int(raw)
    return float(raw) * p.scale + p.offset


def to_raw(p: Iec104Point, value: Any) -> float | int:
    """Engineering value → raw 104 number (inverse of :func:`to_engineering`), clamped to the type's range."""
    kind = kind_of(p.type)
    if kind in ("single", "double"):
        v = int(value or 0)
        if p.value_map:
            v = {code: raw for raw, code in p.value_map.items()}.get(v, v)
        return (1 if v else 0) if kind == "single" else v & 3
    raw = (float(value or 0) - p.offset) / p.scale
    if kind == "step":
        return max(-64, min(63, int(round(raw))))
    if kind == "scaled":
        return max(-32768, min(32767, int(round(raw))))
    if kind == "counter":
        return max(-(2**31), min(2**31 - 1, int(round(raw))))
    return raw


def make_info(p: Iec104Point, value: Any, q: int, ts: float) -> Any:
    """A c104 monitoring Information for a point from an engineering value, gridgate quality and time."""
    raw = to_raw(p, value)
    kind = kind_of(p.type)
    qual = c104_quality(q_to_quality(q))
    at = from_epoch(ts)
    if kind == "single":
        return c104.SingleInfo(on=bool(raw), quality=qual, recorded_at=at)
    if kind == "double":
        return c104.DoubleInfo(state=_DOUBLE[int(raw)], quality=qual, recorded_at=at)
    if kind == "step":
        return c104.StepInfo(c104.Int7(int(raw)), False, qual, at)  # positional: the stub says position=, the binary state=
    if kind == "scaled":
        return c104.ScaledInfo(actual=c104.Int16(int(raw)), quality=qual, recorded_at=at)
    if kind == "counter":
        cq = c104.BinaryCounterQuality.Invalid if q_to_quality(q) & 0x80 else c104.BinaryCounterQuality()
        return c104.BinaryCounterInfo(counter=int(raw), sequence=c104.UInt5(0), quality=cq, recorded_at=at)
    return c104.ShortInfo(actual=float(raw), quality=qual, recorded_at=at)


_DOUBLE = {0: c104.Double.INTERMEDIATE, 1: c104.Double.OFF, 2: c104.Double.ON, 3: c104.Double.INDETERMINATE}


def make_command(p: Iec104Point, value: Any) -> Any:
    """The c104 command Information that operates ``p`` to ``value`` (engineering units / codes)."""
    ctype = command_type(p)
    raw = to_raw(p, value)
    if ctype == "C_SC_NA_1":
        return c104.SingleCmd(on=bool(raw))
    if ctype == "C_DC_NA_1":
        if raw not in (1, 2):
            raise ValueError(f"a double command needs the code of OFF (1) or ON (2) after value_map, got {value!r}")
        return c104.DoubleCmd(state=_DOUBLE[int(raw)])
    if ctype == "C_RC_NA_1":
        # a regulating step: the value is the target position; the step direction comes from the current one
        raise ValueError("use make_step for regulating steps")
    if ctype == "C_SE_NB_1":
        return c104.ScaledCmd(target=c104.Int16(int(raw)))
    return c104.ShortCmd(target=float(raw))


def make_step(higher: bool) -> Any:
    return c104.StepCmd(direction=c104.Step.HIGHER if higher else c104.Step.LOWER)


def command_value(p: Iec104Point, info: Any, current: Any) -> float | int | bool | None:
    """What a received command asks the firmware to make of point ``p`` (engineering units)."""
    ctype = command_type(p)
    if ctype == "C_RC_NA_1":
        step = info.value
        if step not in (c104.Step.HIGHER, c104.Step.LOWER):
            return None
        pos = float(current or 0)
        return pos + (p.scale if step == c104.Step.HIGHER else -p.scale)
    if ctype == "C_DC_NA_1":
        code = int(info.value.value)
        if code not in (1, 2):
            return None
        return p.value_map.get(code, code) if p.value_map else code
    if ctype == "C_SC_NA_1":
        b = int(bool(info.value))
        return p.value_map.get(b, b) if p.value_map else b
    raw = float(int(info.value)) if ctype == "C_SE_NB_1" else float(info.value)
    return raw * p.scale + p.offset


# ---------------------------------------------------------------- APCI parameters


def apply_parameters(params: Any, o: Iec104Options) -> None:
    """t0..t3, k, w from the site file onto a c104 ProtocolParameters (c104 takes ms)."""
    params.connection_timeout = int(o.t0 * 1000)
    params.message_timeout = int(o.t1 * 1000)
    params.confirm_interval = int(o.t2 * 1000)
    params.keep_alive_interval = int(o.t3 * 1000)
    params.send_window_size = o.k
    params.receive_window_size = o.w


# ---------------------------------------------------------------- callbacks with c104's exact signatures


def point_callback(fn: Callable[[Any, Any, Any], Any], on_error: Callable[[BaseException], None], default: Any = None) -> Any:
    """Wrap ``fn(point, previous_info, message) -> ResponseState`` in the signature c104 insists on."""
    fallback = c104.ResponseState.FAILURE if default is None else default

    def cb(point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage) -> c104.ResponseState:
        try:
            return fn(point, previous_info, message)
        except Exception as e:  # never unwind into lib60870's thread
            on_error(e)
            return fallback

    return cb


def raw_callback(fn: Callable[[bytes], None], on_error: Callable[[BaseException], None], server: bool) -> Any:
    if server:
        def scb(server: c104.Server, data: bytes) -> None:
            try:
                fn(data)
            except Exception as e:
                on_error(e)

        return scb

    def ccb(connection: c104.Connection, data: bytes) -> None:
        try:
            fn(data)
        except Exception as e:
            on_error(e)

    return ccb


def state_callback(fn: Callable[[str], None]) -> Any:
    def cb(connection: c104.Connection, state: c104.ConnectionState) -> None:
        try:
            fn(state.name)
        except Exception:
            log.exception("iec104: state callback failed")

    return cb


def unexpected_callback(fn: Callable[[str, int], None], server: bool) -> Any:
    if server:
        def scb(server: c104.Server, message: c104.IncomingMessage, cause: c104.Umc) -> None:
            fn(cause.name, int(message.type.value) if message.type is not None else 0)

        return scb

    def ccb(connection: c104.Connection, message: c104.IncomingMessage, cause: c104.Umc) -> None:
        fn(cause.name, int(message.type.value) if message.type is not None else 0)

    return ccb


def clock_callback(fn: Callable[[float | None], bool]) -> Any:
    def cb(server: c104.Server, ip: str, date_time: dt.datetime) -> c104.ResponseState:
        return c104.ResponseState.SUCCESS if fn(to_epoch(date_time)) else c104.ResponseState.FAILURE

    return cb


def connect_callback(fn: Callable[[str], bool]) -> Any:
    def cb(server: c104.Server, ip: str) -> bool:
        return bool(fn(ip))

    return cb


# ---------------------------------------------------------------- raw APDU checks and confirmations


@dataclass(frozen=True, slots=True)
class Apdu:
    """The header of one APDU: format (I/S/U), and for I-frames the ASDU header."""

    fmt: str  # "I", "S", "U"
    type_id: int = 0
    cot: int = 0
    negative: bool = False
    ca: int = 0
    ioa: int = 0
    select: bool = False  # S/E bit of a command's qualifier
    u_function: int = 0


class MalformedApdu(ValueError):
    """A frame that breaks IEC 60870-5-104 §5: the reason names the field."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def parse_apdu(data: bytes) -> Apdu:
    """Check and decode one APDU's header; raise :class:`MalformedApdu` naming what is wrong."""
    if len(data) < 6 or data[0] != 0x68:
        raise MalformedApdu("bad_start", f"an APDU starts with 0x68 and has at least 6 octets, got {data[:8].hex(' ')}")
    if data[1] != len(data) - 2:
        raise MalformedApdu("bad_length", f"length octet says {data[1]}, the frame carries {len(data) - 2}")
    c1 = data[2]
    if c1 & 0x01 == 0:
        if len(data) < 2 + 4 + 6 + 3:
            raise MalformedApdu("truncated_asdu", f"an I-frame needs an ASDU header and an IOA, got {len(data) - 6} ASDU octets")
        tid, vsq, cot = data[6], data[7], data[8]
        if tid not in KNOWN_TYPE_IDS:
            raise MalformedApdu("unknown_type", f"type identification {tid} is not defined by IEC 60870-5-104")
        ca = data[10] | data[11] << 8
        ioa = data[12] | data[13] << 8 | data[14] << 16
        n = vsq & 0x7F
        if n == 0:
            raise MalformedApdu("truncated_asdu", "the variable structure qualifier says 0 information objects")
        qualifier = data[-1] if 45 <= tid <= 50 else data[-8] if 58 <= tid <= 63 and len(data) >= 23 else 0
        sel = bool(qualifier & 0x80)  # S/E of SCO/DCO/RCO/QOS
        return Apdu("I", tid, cot & 0x3F, bool(cot & 0x40), ca, ioa, sel)
    if c1 & 0x03 == 0x01:
        return Apdu("S")
    return Apdu("U", u_function=c1)


@dataclass
class _Pending:
    type_id: int
    ioa: int
    events: list[Apdu] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)


class Confirmations:
    """Command confirmations read from the raw APDU stream (c104's own verdict is not reliable, see the
    module docstring). ``expect`` before sending, ``feed`` every received APDU, ``wait`` for the verdict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], _Pending] = {}

    def expect(self, type_id: int, ioa: int) -> _Pending:
        p = _Pending(type_id, ioa)
        with self._lock:
            self._pending[(type_id, ioa)] = p
        return p

    def done(self, p: _Pending) -> None:
        with self._lock:
            if self._pending.get((p.type_id, p.ioa)) is p:
                del self._pending[(p.type_id, p.ioa)]

    def feed(self, a: Apdu) -> None:
        if a.fmt != "I":
            return
        with self._lock:
            p = self._pending.get((a.type_id, a.ioa))
        if p is None:
            return
        with p.cond:
            p.events.append(a)
            p.cond.notify_all()

    @staticmethod
    def wait(p: _Pending, sbo: bool, timeout: float, term_timeout: float) -> tuple[str, Apdu | None, bool]:
        """→ (verdict, deciding APDU, terminated). verdict: ``accepted`` (positive execute ACT_CON),
        ``negative`` (negative ACT_CON or COT 44–47), ``timed_out`` (no execute confirmation)."""
        deadline = time.monotonic() + timeout
        with p.cond:
            verdict, deciding = "timed_out", None
            while True:
                for a in p.events:
                    if a.cot in REFUSAL_COTS:
                        return "negative", a, False
                    if a.cot == 7 and a.negative:  # lib60870 may follow it with the precise COT 44–47
                        precise = Confirmations._refusal_after(p, min(0.5, max(0.0, deadline - time.monotonic())))
                        return "negative", precise or a, False
                    if a.cot == 7 and (not sbo or not a.select):
                        verdict, deciding = "accepted", a
                    if a.cot == 10 and verdict == "accepted":
                        return verdict, deciding, True
                if verdict == "accepted":
                    deadline = min(deadline, time.monotonic() + term_timeout)
                left = deadline - time.monotonic()
                if left <= 0:
                    return verdict, deciding, False
                p.cond.wait(left)


    @staticmethod
    def _refusal_after(p: _Pending, timeout: float) -> Apdu | None:
        deadline = time.monotonic() + timeout
        while True:
            for a in p.events:
                if a.cot in REFUSAL_COTS:
                    return a
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            p.cond.wait(left)


def describe_refusal(a: Apdu | None) -> str:
    if a is None:
        return "no confirmation"
    if a.cot in REFUSAL_COTS:
        return f"refused with COT {a.cot} ({COT_NAMES[a.cot]})"
    return f"negative activation confirmation (COT {a.cot}, P/N=1)"


def device_points(d: Iec104Device) -> dict[int, Iec104Point]:
    return {p.ioa: p for p in d.points}
