"""The command path: ``{prefix}/{gateway}/cmd/{mRID}`` JSON requests down to device drivers.

Only where allowed: the network profile must permit commands at all (``allowed``), the
point's ``command`` policy must be enabled, the operator listed (empty list: anyone), the
request fresh (``ttl``) and never seen before (``id``). The mode (direct / select-before-
operate) is the point's configured one, not the requester's choice. Every request gets
exactly one result on ``.../cmd/{mRID}/result`` (QoS 1) and one log line; nothing is
dropped silently. Drivers only need ``async operate(point, value, mode)`` returning an
object with ``ok`` (the DNP3 master and the IEC 61850 client both do).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.southbound.contract import Mode, Operable

log = logging.getLogger(__name__)




class CommandRequest(BaseModel):
    """What a control room sends. ``issued``: epoch seconds or ISO 8601 with a zone."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    value: float | int | bool
    operator: str = Field(min_length=1, max_length=64)
    issued: float | str

    @field_validator("issued")
    @classmethod
    def _epoch(cls, v: float | str) -> float:
        if isinstance(v, str):
            t = datetime.fromisoformat(v.replace("Z", "+00:00"))
            if t.tzinfo is None:
                raise ValueError("needs a time zone, e.g. 2026-11-22T16:00:00Z")
            return t.timestamp()
        return float(v)


@dataclass(frozen=True)
class CommandPoint:
    """One commandable measurement: where it lives and its policy (from the site config)."""

    mrid: str
    device: str
    point: str
    kind: Literal["Analog", "Discrete", "Accumulator"]
    operators: tuple[str, ...] = ()
    mode: Mode = "direct"
    ttl: float = 10.0


def command_points(cfg: Any) -> list[CommandPoint]:
    """Every point of ``cfg`` (gateway.config.Config) whose ``command.enabled`` is set."""
    from gateway.site.model import KIND_OF_TYPE

    out = []
    for d in cfg.devices:
        for p in d.points:
            c = p.command
            if c is not None and c.enabled:
                out.append(CommandPoint(str(cfg.measurement_mrid(p)), d.name, p.name, KIND_OF_TYPE[p.measurement.type],
                                        tuple(c.operators), c.mode, float(c.ttl)))
    return out


class CommandRouter:
    """Checks a request against profile and policy, runs it on the driver, publishes the result."""

    def __init__(self, topic_prefix: str, gateway: str, points: list[CommandPoint], targets: dict[str, Operable],
                 publish: Callable[[str, bytes, int, bool], object], *, allowed: bool, future_skew: float = 5.0,
                 remember: int = 10000) -> None:
        self.base = f"{topic_prefix}/{gateway}/cmd"
        self.points = {p.mrid: p for p in points}
        self.targets = targets
        self.publish = publish
        self.allowed = allowed
        self.future_skew = future_skew
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self.stats: Counter = Counter()

    @property
    def subscription(self) -> str:
        return f"{self.base}/+"

    def on_message(self, topic: str, payload: bytes) -> None:
        """MqttPublisher.subscribe handler: runs the command in its own task."""
        if topic.endswith("/result"):
            return
        task = asyncio.get_running_loop().create_task(self.handle(topic, payload))
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    async def handle(self, topic: str, payload: bytes) -> dict:
        mrid = topic.rsplit("/", 1)[-1]
        req_id = None
        try:
            raw = json.loads(payload)
            req_id = raw.get("id") if isinstance(raw, dict) else None
            req = CommandRequest.model_validate(raw)
        except (ValueError, ValidationError) as exc:
            return self._result(mrid, req_id, "rejected", "bad_request", _explain(exc))
        point = self.points.get(mrid)
        if not self.allowed:
            return self._result(mrid, req.id, "rejected", "not_allowed_by_profile",
                                "this gateway's network profile does not permit commands")
        if point is None:
            return self._result(mrid, req.id, "rejected", "not_commandable",
                                f"no point with mRID {mrid} has command.enabled in the site config")
        if point.operators and req.operator not in point.operators:
            return self._result(mrid, req.id, "rejected", "operator_not_allowed",
                                f"operator {req.operator!r} is not in command.operators of {point.device}/{point.point}")
        age = time.time() - req.issued
        if age > point.ttl:
            return self._result(mrid, req.id, "rejected", "expired", f"issued {age:.1f} s ago, ttl is {point.ttl:g} s")
        if age < -self.future_skew:
            return self._result(mrid, req.id, "rejected", "clock_skew", f"issued {-age:.1f} s in the future")
        if req.id in self._seen:
            return self._result(mrid, req.id, "rejected", "duplicate", f"request id {req.id!r} was already handled")
        if point.kind == "Discrete" and (isinstance(req.value, float) and not req.value.is_integer()):
            return self._result(mrid, req.id, "rejected", "bad_value", f"a discrete point takes an integer or bool, not {req.value}")
        target = self.targets.get(point.device)
        if target is None:
            return self._result(mrid, req.id, "rejected", "device_unavailable", f"no running driver for {point.device}")
        self._seen[req.id] = None  # accepted: a replay of this id is refused from now on
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        async with self._locks.setdefault(mrid, asyncio.Lock()):  # one operation per point at a time
            try:
                res = await target.operate(point.point, req.value, point.mode)
            except Exception as exc:  # a driver bug must still answer the control room
                log.exception("command %s on %s/%s: driver raised", req.id, point.device, point.point)
                return self._result(mrid, req.id, "failed", "driver_error", f"{type(exc).__name__}: {exc}")
        detail = res.model_dump()
        ok = res.ok
        return self._result(mrid, req.id, "done" if ok else "failed", None if ok else "device_refused", detail,
                            extra={"device": point.device, "point": point.point, "value": req.value, "mode": point.mode,
                                   "operator": req.operator})

    def _result(self, mrid: str, req_id: object, status: str, reason: str | None, detail: object,
                extra: dict | None = None) -> dict:
        body = {"id": req_id, "mRID": mrid, "status": status, "reason": reason, "detail": detail, "timeStamp": time.time()}
        body.update(extra or {})
        self.stats[status if reason is None else f"{status}:{reason}"] += 1
        level = logging.INFO if status == "done" else logging.WARNING
        log.log(level, "command %s on %s: %s%s — %s", req_id, mrid, status, f" ({reason})" if reason else "", detail)
        self.publish(f"{self.base}/{mrid}/result", json.dumps(body, default=str).encode(), 1, False)
        return body


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors())
    return f"not JSON: {exc}"
