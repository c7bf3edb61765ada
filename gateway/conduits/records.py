"""The unit a conduit carries: one northbound MQTT message (topic, payload, qos, retain)
plus when the gateway produced it. Conduits never look inside payloads."""

from __future__ import annotations

import base64
import time

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(min_length=1)
    payload: bytes
    qos: int = Field(1, ge=0, le=2)
    retain: bool = False
    t: float = Field(default_factory=time.time, description="gateway time it was produced (epoch s)")

    def to_wire(self) -> dict:
        return {"topic": self.topic, "payload": base64.b64encode(self.payload).decode(), "qos": self.qos,
                "retain": self.retain, "t": self.t}

    @classmethod
    def from_wire(cls, d: dict) -> "Record":
        return cls(**{**d, "payload": base64.b64decode(d["payload"], validate=True)})


class KeyError_(ValueError):
    """A missing or unusable conduit key; the message says how to make one (gateway/conduits/signing.py)."""
