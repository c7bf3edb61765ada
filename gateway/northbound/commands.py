"""The command path: ``{prefix}/{gateway}/cmd/{mRID}`` JSON requests down to device drivers.

Only where allowed: the network profile must permit commands at all (``allowed``), the
point's ``command`` policy must be enabled, the operator listed (empty list: anyone), the
request fresh (``ttl``) and never seen before (``id``). The mode (direct / select-before-
operate) is the point's configured one, not the requester's choice. Every request gets
exactly one result on ``.../cmd/{mRID}/result`` (QoS 1) and one log line; nothing is
dropped silently. Drivers implement ``Operable`` (gateway/southbound/contract.py): ``operate`` returns a
``CommandOutcome`` whose ``outcome`` (accepted, refused, device_error, timed_out, not_connected) the result
carries beside the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import ValidationError

from gateway.northbound.command_auth import SignatureRefused, verify
from gateway.northbound.command_schema import REASONS, BadRequest, CommandRequest, SignedEnvelope, loads_strict
from gateway.northbound.command_values import check_value
from gateway.southbound.contract import Mode, Operable

log = logging.getLogger(__name__)

#: where the result of the request being handled goes (.../cmd or .../cmd/{operator}); one per request task
_reply_base: ContextVar[str] = ContextVar("command_reply_base")
#: another way back for the result (Sparkplug DCMD: a DDATA of the point's result metric); one per request task
_reply_to: ContextVar[Callable[[dict], None] | None] = ContextVar("command_reply_to", default=None)


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
    measurement_type: str = ""
    codes: tuple[int, ...] = ()  # a discrete's value_map codes: the only values it takes


def command_points(cfg: Any) -> list[CommandPoint]:
    """Every point of ``cfg`` (gateway.config.Config) whose ``command.enabled`` is set."""
    from gateway.site.cimtypes import KIND_OF_TYPE

    out = []
    for d in cfg.devices:
        for p in d.points:
            c = p.command
            if c is not None and c.enabled:
                out.append(CommandPoint(str(cfg.measurement_mrid(p)), d.name, p.name, KIND_OF_TYPE[p.measurement.type],
                                        tuple(c.operators), c.mode, float(c.ttl), p.measurement.type,
                                        tuple(sorted(set((p.value_map or {}).values())))))
    return out


class CommandRouter:
    """Checks a request against profile and policy, runs it on the driver, publishes the result."""

    def __init__(self, topic_prefix: str, gateway: str, points: list[CommandPoint], targets: dict[str, Operable],
                 publish: Callable[[str, bytes, int, bool], object], *, allowed: bool, future_skew: float = 5.0,
                 remember: int = 10000, operator_topics: bool = False, keys: dict | None = None) -> None:
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
        #: requests on {base}/{operator}/{mRID}: the broker's ACL binds the operator to the MQTT user
        self.operator_topics = operator_topics
        #: operator → Ed25519 public key; when set, only signed envelopes are accepted (command_auth.py)
        self.keys = keys or {}

    @property
    def subscription(self) -> str:
        return f"{self.base}/+/+" if self.operator_topics else f"{self.base}/+"

    def on_message(self, topic: str, payload: bytes) -> None:
        """MqttPublisher.subscribe handler: runs the command in its own task."""
        if topic.endswith("/result"):
            return  # shared topics: .../cmd/+ never matches a result; kept for brokers that echo
        task = asyncio.get_running_loop().create_task(self.handle(topic, payload))
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    async def handle(self, topic: str, payload: bytes) -> dict:
        """Exactly one result per request, whatever the payload (a gateway bug answers internal_error)."""
        parts = topic.rsplit("/", 2)
        mrid = parts[-1]
        bound = parts[-2] if self.operator_topics else None  # the operator the topic (and so the ACL) names
        _reply_base.set(self.base if bound is None else f"{self.base}/{bound}")  # per request task
        try:
            return await self._handle(topic, mrid, payload, bound)
        except Exception as exc:  # noqa: BLE001 - the control room must still get its one answer
            log.exception("command on %s: internal error", mrid)
            return self._result(mrid, None, "internal_error", f"{type(exc).__name__}: {exc}")

    async def _handle(self, topic: str, mrid: str, payload: bytes, bound: str | None) -> dict:
        req_id = None
        envelope = None
        try:
            raw = loads_strict(payload)
            if self.keys:
                envelope = SignedEnvelope.model_validate(raw)
                raw = loads_strict(envelope.request.encode())
            req_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            req = CommandRequest.model_validate(raw)
        except (BadRequest, ValidationError) as exc:
            return self._result(mrid, req_id, "bad_request", _explain(exc))
        if envelope is not None:
            try:
                verify(self.keys, topic, req.operator, envelope.request, envelope.signature)
            except SignatureRefused as exc:
                return self._result(mrid, req.id, "bad_signature", str(exc))
        return await self._run(mrid, req, bound)

    async def execute(self, mrid: str, raw: dict, reply: Callable[[dict], None]) -> dict:
        """A request that came another way (Sparkplug DCMD/NCMD): the same checks, its one result to ``reply``.

        Where the site requires signed requests (command_keys) it is refused: such a request carries no signature.
        """
        _reply_to.set(reply)  # per request task
        try:
            if self.keys:
                return self._result(mrid, raw.get("id"), "bad_signature",
                                    "this site accepts only Ed25519-signed commands (command_keys); a Sparkplug "
                                    f"command carries no signature: use {self.base}/{mrid} with a signed envelope")
            try:
                req = CommandRequest.model_validate(raw)
            except ValidationError as exc:
                return self._result(mrid, raw.get("id"), "bad_request", _explain(exc))
            return await self._run(mrid, req, None)
        except Exception as exc:  # noqa: BLE001 - the host must still get its one answer
            log.exception("command on %s: internal error", mrid)
            return self._result(mrid, raw.get("id"), "internal_error", f"{type(exc).__name__}: {exc}")

    async def _run(self, mrid: str, req: CommandRequest, bound: str | None) -> dict:
        """Policy (profile, enabled, operator, TTL, duplicate, value), then the driver; one result."""
        if bound is not None and req.operator != bound:
            return self._result(mrid, req.id, "operator_not_allowed",
                                f"operator {req.operator!r} on the topic of operator {bound!r}; each operator uses "
                                f"{self.base}/<own user name>/{mrid}")
        point = self.points.get(mrid)
        if not self.allowed:
            return self._result(mrid, req.id, "not_allowed_by_profile", "this gateway's network profile does not permit commands")
        if point is None:
            return self._result(mrid, req.id, "not_commandable", f"no point with mRID {mrid} has command.enabled in the site config")
        if point.operators and req.operator not in point.operators:
            return self._result(mrid, req.id, "operator_not_allowed",
                                f"operator {req.operator!r} is not in command.operators of {point.device}/{point.point}")
        age = time.time() - req.issued
        if not age <= point.ttl:  # written so that anything not comparable fails closed
            return self._result(mrid, req.id, "expired", f"issued {age:.1f} s ago, ttl is {point.ttl:g} s")
        if not age >= -self.future_skew:
            return self._result(mrid, req.id, "clock_skew", f"issued {-age:.1f} s in the future")
        if req.id in self._seen:
            return self._result(mrid, req.id, "duplicate", f"request id {req.id!r} was already handled")
        value, why = check_value(point.kind, point.measurement_type, point.codes, req.value)
        if why is not None:
            return self._result(mrid, req.id, "bad_value", f"{point.device}/{point.point}: {why}")
        target = self.targets.get(point.device)
        if target is None:
            return self._result(mrid, req.id, "device_unavailable", f"no running driver for {point.device}")
        self._seen[req.id] = None  # accepted: a replay of this id is refused from now on
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        async with self._locks.setdefault(mrid, asyncio.Lock()):  # one operation per point at a time
            try:
                res = await target.operate(point.point, value, point.mode)
            except Exception as exc:  # a driver bug must still answer the control room
                log.exception("command %s on %s/%s: driver raised", req.id, point.device, point.point)
                return self._result(mrid, req.id, "driver_error", f"{type(exc).__name__}: {exc}")
        detail = res.model_dump()
        return self._result(mrid, req.id, None if res.ok else "device_refused", detail,
                            extra={"device": point.device, "point": point.point, "value": value, "mode": point.mode,
                                   "operator": req.operator, "outcome": res.outcome})

    def _result(self, mrid: str, req_id: object, reason: str | None, detail: object, extra: dict | None = None) -> dict:
        status = "done" if reason is None else REASONS[reason]
        body = {"id": req_id, "mRID": mrid, "status": status, "reason": reason, "detail": detail, "timeStamp": time.time()}
        body.update(extra or {})
        self.stats[status if reason is None else f"{status}:{reason}"] += 1
        level = logging.INFO if status == "done" else logging.WARNING
        log.log(level, "command %s on %s: %s%s — %s", req_id, mrid, status, f" ({reason})" if reason else "", detail)
        reply = _reply_to.get()
        if reply is not None:
            reply(body)
        else:
            self.publish(f"{_reply_base.get(self.base)}/{mrid}/result", json.dumps(body, default=str).encode(), 1, False)
        return body


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors())
    return str(exc)
