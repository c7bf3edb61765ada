"""DNP3 site-file models: point groups and indexes, event classes, master/outstation options."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from gateway.site.model import DeviceBase, PointBase, PollInterval, _Model

Dnp3Group = Literal["binary", "double_binary", "analog", "counter", "binary_output", "analog_output"]


class Dnp3Point(PointBase):
    group: Dnp3Group
    index: int = Field(ge=0, le=65535)
    event_class: Literal[0, 1, 2, 3] = Field(1, description="0: static only, no events")
    variation: int | None = Field(None, description="event variation override (default: with time)")


class Dnp3Options(_Model):
    master_address: int = Field(1, ge=0, le=65519)
    outstation_address: int = Field(10, ge=0, le=65519)
    unsolicited: bool = True
    integrity_interval: PollInterval = 600.0
    event_poll_interval: PollInterval = 5.0
    event_buffer: dict[Literal["class1", "class2", "class3"], int] = Field(
        default_factory=lambda: {"class1": 500, "class2": 500, "class3": 500}  # type: ignore[arg-type]
    )
    second_master: Literal["refuse", "replace"] = Field(
        "refuse",
        description="emulated outstation: a new connection while a master heard within connections.idle_timeout is "
        "refused (refuse) or takes over (replace)",
    )


class Dnp3Device(DeviceBase):
    protocol: Literal["dnp3"]
    dnp3: Dnp3Options = Field(default_factory=Dnp3Options)
    points: list[Dnp3Point] = Field(min_length=1)

    address_key: ClassVar[str] = "index"

    def point_addresses(self, p: Dnp3Point) -> list[tuple]:  # type: ignore[override]
        return [(p.group, "index", p.index)]



Dnp3Point.model_rebuild()
