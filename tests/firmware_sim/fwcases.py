"""Point sets shared by the firmware_sim tests: every signal kind and every fault kind."""

from __future__ import annotations

import struct

from firmware_sim import SimPoint
from firmware_sim.spec import LoadGroup

T0 = 1_763_800_000.0  # a Saturday in November 2025, 08:26:40 UTC


def sp(name, signal, device="rtu1", **kw) -> SimPoint:
    return SimPoint(device=device, name=name, signal=signal, **kw)


def all_kinds() -> tuple[list[SimPoint], dict]:
    """Every signal kind, several with noise, registers of every type and order, and a fault of every kind."""
    pts = [
        sp("const", {"kind": "constant", "value": 230.0, "noise": 1.5}, deadband=0.5,
           register={"table": "input", "address": 0, "type": "int16", "scale": 0.1}),
        sp("sine", {"kind": "sine", "mean": 50.0, "amplitude": 0.05, "period": 7.0, "phase": 30, "noise": 0.002,
                    "harmonics": [[3, 0.1], [5, 0.05]]}, deadband=0.01,
           register={"table": "input", "address": 1, "type": "float32", "word_order": "little"}),
        sp("ramp", {"kind": "ramp", "start": 5.0, "rate": 0.7, "min": 0.0, "max": 9.0}, deadband=0.3),
        sp("ramp_wrap", {"kind": "ramp", "start": 1.0, "rate": 1.3, "min": 0.0, "max": 10.0, "wrap": True},
           register={"table": "input", "address": 3, "type": "uint32", "byte_order": "little", "scale": 0.001}),
        sp("walk", {"kind": "random_walk", "start": 100.0, "step": 2.0, "min": 90.0, "max": 110.0, "revert": 0.05}),
        sp("steps", {"kind": "steps", "schedule": [[0, 1], [2.0, 5], [4.5, 3]], "repeat": 6.0}),
        sp("profile", {"kind": "daily_profile", "peak": 800.0, "shape": "domestic", "noise": 3.0}, deadband=2.0,
           register={"table": "input", "address": 5, "type": "int32", "word_order": "little", "byte_order": "little"}),
        sp("tap", {"kind": "discrete", "initial": 5, "min": 1, "max": 17},
           register={"table": "holding", "address": 0, "type": "uint16"}),
        sp("breaker", {"kind": "discrete", "initial": 2, "min": 0, "max": 3},
           register={"table": "coil", "address": 0, "type": "bool", "offset": 1.0}),
        sp("setpoint", None, register={"table": "holding", "address": 1, "type": "float32"}),
        sp("P", {"kind": "derived", "group": "F1", "quantity": "P", "noise": 0.5}, deadband=1.0,
           register={"table": "input", "address": 7, "type": "int32"}),
        sp("Q", {"kind": "derived", "group": "F1", "quantity": "Q"}),
        sp("S", {"kind": "derived", "group": "F1", "quantity": "S"}),
        sp("I", {"kind": "derived", "group": "F1", "quantity": "I"}, deadband=0.2),
        sp("V", {"kind": "derived", "group": "F1", "quantity": "V"}),
        sp("PF", {"kind": "derived", "group": "F1", "quantity": "PF"}),
        sp("E", {"kind": "counter", "source": "P", "scale": 1 / 3600, "rollover": 0.5},
           register={"table": "input", "address": 9, "type": "uint32", "scale": 1e-6}),
        # faults, one of each kind, on their own points
        sp("f_stuck", {"kind": "sine", "mean": 10, "amplitude": 3, "period": 5}, faults=[{"kind": "stuck"}]),
        sp("f_stuck_v", {"kind": "sine", "mean": 10, "amplitude": 3, "period": 5}, faults=[{"kind": "stuck", "value": 7.5}]),
        sp("f_drift", {"kind": "constant", "value": 20}, faults=[{"kind": "drift", "rate": 0.25}]),
        sp("f_spike", {"kind": "constant", "value": 1}, faults=[{"kind": "spike", "magnitude": 100, "every": 2.0}]),
        sp("f_spike_w", {"kind": "constant", "value": 1}, faults=[{"kind": "spike", "magnitude": -50, "every": 3.0, "width": 1.0}]),
        sp("f_noise", {"kind": "constant", "value": 5}, faults=[{"kind": "noise", "sigma": 2.0}]),
        sp("f_offset", {"kind": "sine", "mean": 0, "amplitude": 1, "period": 9}, faults=[{"kind": "offset", "value": 4.0}]),
        sp("f_sat", {"kind": "sine", "mean": 0, "amplitude": 10, "period": 4}, faults=[{"kind": "saturate", "min": -5, "max": 6}]),
        sp("f_drop", {"kind": "ramp", "start": 0, "rate": 1}, faults=[{"kind": "dropout"}]),
        sp("f_oor", {"kind": "constant", "value": 3}, faults=[{"kind": "out_of_range", "value": 9999}]),
        sp("f_osc", {"kind": "discrete", "initial": 2}, faults=[{"kind": "oscillation", "period": 1.0}]),
        sp("f_scale", {"kind": "constant", "value": 12, "noise": 0.1}, faults=[{"kind": "scale_error", "factor": 1.1}]),
        sp("f_quality", {"kind": "constant", "value": 1}, faults=[{"kind": "quality", "flags": ["substituted", "questionable"]}]),
        sp("f_two", {"kind": "sine", "mean": 100, "amplitude": 20, "period": 6},
           faults=[{"kind": "offset", "value": 10}, {"kind": "saturate", "max": 115}, {"kind": "quality", "flags": ["invalid", "test"]}]),
        sp("ovf", {"kind": "ramp", "start": 32000, "rate": 400},
           register={"table": "input", "address": 11, "type": "int16"}),
    ]
    groups = {"rtu1": [LoadGroup(name="F1", load={"kind": "daily_profile", "peak": 4000.0, "shape": "mixed-feeder", "noise": 20.0},
                                 power_factor=0.93, voltage=11000.0, voltage_noise=15.0)]}
    return pts, groups


def times(n: int, start: float = T0) -> list[float]:
    """Irregular tick times (0.21..1.0 s apart), never exactly on a wrap or step boundary."""
    out, t = [], start
    for k in range(n):
        out.append(t)
        t += 0.21 + ((k * 7919) % 80) / 100.0
    return out


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]
