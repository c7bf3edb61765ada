"""The command wire format: strict parsing of requests, the result vocabulary, their JSON Schemas.

Strict because a command operates real plant: a payload is refused unless it is at most
``MAX_PAYLOAD`` bytes of UTF-8 JSON, nested at most ``MAX_DEPTH`` deep, free of NaN/Infinity
(which Python's parser accepts, and which compare false with everything, so a NaN ``issued``
used to skip the TTL check), free of duplicate keys, and every field has its JSON type
(no ``"13"`` for 13). Every refusal uses one vocabulary, :data:`REASONS`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator

MAX_PAYLOAD = 4096  # bytes; a request is ~120
MAX_DEPTH = 4  # a request is flat (depth 1)
MAX_INT_DIGITS = 20

Status = Literal["done", "rejected", "failed"]
#: every reason a result can carry, and the status it comes with. ``rejected``: nothing was sent
#: to the device; ``failed``: the device or its driver was asked and did not succeed.
REASONS: dict[str, Status] = {
    "bad_request": "rejected",  # not a valid request (size, depth, JSON, NaN/Infinity, missing/extra/mistyped field)
    "not_allowed_by_profile": "rejected",  # the network profile forbids commands
    "not_commandable": "rejected",  # no point with this mRID has command.enabled
    "operator_not_allowed": "rejected",  # operator not in command.operators (or not the one the topic names)
    "bad_signature": "rejected",  # signed requests required (command_keys) and this one's signature does not verify
    "expired": "rejected",  # issued longer ago than the point's ttl
    "clock_skew": "rejected",  # issued in the future beyond the allowed skew
    "duplicate": "rejected",  # this request id was already handled
    "bad_value": "rejected",  # the value is not one the point takes (same rule for every protocol)
    "device_unavailable": "rejected",  # no running driver for the device
    "device_refused": "failed",  # the device answered no (DNP3 CROB status, IEC 61850 AddCause, Modbus exception)
    "driver_error": "failed",  # the driver raised
    "internal_error": "failed",  # a gateway bug; logged with a traceback
}
Reason = Literal[tuple(REASONS)]  # type: ignore[valid-type]


class BadRequest(ValueError):
    """The payload is not a request; the message says what and where."""


class CommandRequest(BaseModel):
    """What a control room sends on ``{prefix}/{gateway}/cmd/{mRID}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$",
                          description="unique per request (printable ASCII); a repeated id is refused as duplicate")
    value: StrictBool | StrictInt | StrictFloat = Field(
        description="SwitchPosition: 1 open, 2 closed; other discretes: an integer code; analogs: the setpoint")
    operator: StrictStr = Field(min_length=1, max_length=64, description="who operates; checked against command.operators")
    issued: StrictFloat | StrictInt | StrictStr = Field(
        description="when the operator issued it: epoch seconds or ISO 8601 with a zone, e.g. 2026-11-22T16:00:00Z")

    @field_validator("issued")
    @classmethod
    def _epoch(cls, v: float | int | str) -> float:
        if isinstance(v, str):
            try:
                t = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("not an ISO 8601 time, e.g. 2026-11-22T16:00:00Z") from None
            if t.tzinfo is None:
                raise ValueError("needs a time zone, e.g. 2026-11-22T16:00:00Z")
            return t.timestamp()
        if not math.isfinite(v):  # cannot come from parse_request; guards direct use
            raise ValueError("must be a finite number")
        return float(v)


class SignedEnvelope(BaseModel):
    """Where the site lists ``command_keys``: the request as a string, and the operator's signature over it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request: StrictStr = Field(max_length=MAX_PAYLOAD, description="the CommandRequest JSON, exactly as signed")
    signature: StrictStr = Field(max_length=200, description="base64 Ed25519 signature of "
                                 "'gridgate-command-v1\\n' + topic + '\\n' + request (UTF-8)")


class CommandResult(BaseModel):
    """Exactly one per request, on ``{prefix}/{gateway}/cmd/{mRID}/result`` (QoS 1)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(description="the request's id; null when the payload carried none readable")
    mRID: str
    status: Status
    reason: Reason | None = Field(description="null when done; else one of the documented reasons")  # type: ignore[valid-type]
    detail: Any = Field(description="human-readable explanation, or the driver's result when the device was asked")
    timeStamp: float = Field(description="when the gateway decided, epoch seconds")
    device: str | None = None
    point: str | None = None
    value: bool | int | float | None = None
    mode: Literal["direct", "sbo"] | None = None
    operator: str | None = None


def _depth_ok(payload: bytes) -> bool:
    """Nesting depth at most MAX_DEPTH, counted outside strings (before json.loads can recurse)."""
    depth, in_str, esc = 0, False, False
    for b in payload:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:  # backslash
                esc = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif b in (0x5D, 0x7D):
            depth -= 1
    return True


def _no_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not allowed in a command (JSON has no NaN/Infinity)")


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise BadRequest(f"number {text[:20]} is out of range")
    return v


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadRequest(f"integer with {len(text)} digits is out of range")
    return int(text)


def _unique(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise BadRequest(f"key {k!r} appears twice")
        out[k] = v
    return out


def loads_strict(payload: bytes) -> Any:
    """JSON within the bounds above, or BadRequest naming what is wrong."""
    if len(payload) > MAX_PAYLOAD:
        raise BadRequest(f"payload is {len(payload)} bytes; a command is at most {MAX_PAYLOAD}")
    if not _depth_ok(payload):
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(payload, parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded_int,
                          object_pairs_hook=_unique)
    except BadRequest:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(f"not JSON: {exc}") from None


def json_schemas() -> dict[str, dict]:
    """``gridgate schema command`` / ``gridgate schema result``."""
    req = CommandRequest.model_json_schema()
    req["description"] = (f"{CommandRequest.__doc__} At most {MAX_PAYLOAD} bytes of UTF-8, nesting at most {MAX_DEPTH}, "
                          "no NaN/Infinity, no duplicate keys.")
    res = CommandResult.model_json_schema()
    res["properties"]["reason"]["description"] = "; ".join(f"{r} ({s})" for r, s in REASONS.items())
    return {"command": req, "result": res, "signed_command": SignedEnvelope.model_json_schema()}
