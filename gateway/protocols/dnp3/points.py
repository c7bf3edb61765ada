"""Config points ↔ DNP3 (kind, index) and raw ↔ engineering values, for master and outstation."""

from __future__ import annotations

from gateway.protocols.dnp3.config import Dnp3Device, Dnp3Point

Value = float | int | bool | None


class PointTable:
    def __init__(self, device: Dnp3Device) -> None:
        self.by_name: dict[str, Dnp3Point] = {p.name: p for p in device.points}
        self.by_addr: dict[tuple[str, int], Dnp3Point] = {(p.group, p.index): p for p in device.points}

    def point(self, name: str) -> Dnp3Point:
        try:
            return self.by_name[name]
        except KeyError:
            raise ValueError(f"no DNP3 point named {name!r}; known points: {', '.join(sorted(self.by_name))}") from None


def to_engineering(p: Dnp3Point, raw: Value) -> Value:
    """Raw protocol value → what the Reading carries (scale/offset, or value_map for discretes)."""
    if p.group in ("binary", "binary_output"):
        if p.value_map:
            return p.value_map.get(int(bool(raw)), int(bool(raw)))
        return bool(raw)
    if p.group == "double_binary":
        code = int(raw or 0)
        return p.value_map.get(code, code) if p.value_map else code  # DNP3 double-bit = IEC 61850 Dbpos codes
    v = float(raw or 0) * p.scale + p.offset
    return v


def to_raw(p: Dnp3Point, value: Value) -> Value:
    """Engineering value → raw protocol value (inverse of :func:`to_engineering`)."""
    if p.group in ("binary", "binary_output", "double_binary"):
        v = int(value or 0)
        if p.value_map:
            inverse = {code: raw for raw, code in p.value_map.items()}
            v = inverse.get(v, v)
        return bool(v) if p.group != "double_binary" else v & 3
    raw = (float(value or 0) - p.offset) / p.scale
    return int(round(raw)) if p.group == "counter" else raw
