"""The site's electrical plant as plain data, compiled into the flat arrays both solvers run.

One plant per firmware: a 33 kV source, transformers with on-load tap changers, switches
(breakers, disconnectors, bus sections) between connectivity nodes, busbar sections and
feeder loads with a daily shape. The switch graph must be a forest (checked by the
config model, gateway/plant); the solver (ggplant.c, plant_ref.py) merges nodes joined
by closed switches, feeds each merged group through its energised transformers (several
in parallel at a busbar are fine) and sums node injections up the switch trees to get
every switch's flow.

Every equipment has one block of ``NQ`` output quantities; a ``plant`` point reads
``out[equipment * NQ + quantity] * factor`` (factor: phase share and unit scale).
Equipment order: the source, transformers, switches, loads, busbar sections.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

from firmware_sim.profiles import shape_values

QUANTITIES = ("P", "Q", "S", "I", "PF", "V", "F", "position", "tap", "V_lv", "I_lv", "P_loss", "energised", "start",
              "operate", "avc_auto", "avc_state", "ar_state", "I_A", "I_B", "I_C", "I_N", "avc_in_band", "avc_raise",
              "avc_lower", "avc_timing", "avc_blocked", "avc_lockout")
QI = {q: i for i, q in enumerate(QUANTITIES)}
NQ = len(QUANTITIES)
#: the AVC relay's state as 0/1 flags (one binary input each on an RTU): in band, raise / lower pending
#: (delay running or tap changer moving in that direction), time delay running, blocked, locked out
AVC_FLAGS = ("avc_in_band", "avc_raise", "avc_lower", "avc_timing", "avc_blocked", "avc_lockout")
_FLOW = ("P", "Q", "S", "I", "PF", "V", "F", "energised", "I_A", "I_B", "I_C", "I_N")
ALLOWED = {
    "source": _FLOW,
    "transformer": _FLOW + ("tap", "V_lv", "I_lv", "P_loss", "avc_auto", "avc_state") + AVC_FLAGS,
    "switch": _FLOW + ("position", "start", "operate", "ar_state"),
    "load": _FLOW,
    "busbar": ("V", "F", "energised"),
}
#: quantities a command (set_state) writes into the plant state
WRITABLE = ("position", "tap", "energised", "avc_auto")
#: AVC relay states (avc_state): manual, bus voltage in band, out of band (delay running), tap changer
#: moving, locked out (runaway protection: a tap step the relay did not command; reset by an avc_auto command),
#: blocked (in auto but not acting: transformer de-energised, bus under AVC_BLOCK_V of the target, or the tap
#: changer at its end stop in the direction the band asks for)
AVC_MANUAL, AVC_IN_BAND, AVC_TIMING, AVC_MOVING, AVC_LOCKOUT, AVC_BLOCKED = 0, 1, 2, 3, 4, 5
AVC_BLOCK_V = 0.8  # undervoltage blocking: a fault dip must not make the AVC run the taps
DEFAULT_TAP_TIME = 5.0  # s per step of a tap changer without AVC settings
#: auto-reclose states (ar_state): none, ready, dead time running, reclaim time running, locked out
AR_OFF, AR_READY, AR_DEAD_TIME, AR_RECLAIM, AR_LOCKOUT = 0, 1, 2, 3, 4
AR_MAX_SHOTS = 4
OPEN, CLOSED = 1, 2  # switch positions as the DNP3 double-bit / IEC 61850 Dbpos codes
KEY_PLANT = 0x2545F491
CURVES = {"DT": 0, "SI": 1, "VI": 2, "EI": 3, "LTI": 4}  # IEC 60255-151 inverse-time curves, definite time
#: physical events a scenario or the fault API applies to plant equipment (the C core's codes)
PLANT_FAULTS = {"short_circuit": 1, "load_step": 2, "loss_of_supply": 3, "breaker_fail": 4, "tap_runaway": 5,
                "ct_saturation": 8}
#: the second value of a ct_saturation: the knee current (A) above which the CT under-reads
CT_KNEE = 9
#: transformer vector groups: the phase shift of LV against HV in units of 30° (Dyn11: LV leads by 30°)
VECTOR_GROUPS = {"Dyn11": 1.0, "Dyn1": -1.0}
#: short-circuit types: the event code (three-phase is short_circuit's own code)
FAULT_TYPES = {"three_phase": 1, "phase_earth": 6, "phase_phase": 7}


@dataclass(frozen=True)
class Source:
    name: str
    node: str
    voltage: float  # V line-line
    r: float  # ohm
    x: float  # ohm
    frequency: float = 50.0


@dataclass(frozen=True)
class Transformer:
    name: str
    hv: str
    lv: str
    r: float  # ohm, referred to the LV side
    x: float
    ratio: float  # LV/HV nominal
    step: float  # per unit per tap step (raise = LV up)
    neutral: int
    tap_min: int
    tap_max: int
    tap: int
    avc: "Avc | None" = None
    earthing: float = 6.35  # ohm, LV neutral earthing resistor (about 1 kA earth-fault current at 11 kV)
    vector_group: str = "Dyn11"  # delta HV, earthed star LV: zero sequence does not pass, ±30° phase shift


@dataclass(frozen=True)
class Avc:
    """Automatic voltage control of a tap changer: keeps the LV voltage within target ± band."""

    target: float  # V line-line
    band: float = 0.015  # fraction of the target
    delay: float = 60.0  # s out of band before a tap change
    tap_time: float = 5.0  # s the tap changer takes per step
    ldc_r: float = 0.0  # ohm: line-drop compensation, regulate the voltage at a point down the feeders
    ldc_x: float = 0.0


@dataclass(frozen=True)
class Protection:
    """Overcurrent relay on a breaker: IEC 60255 inverse-time stage plus a definite-time high-set."""

    pickup: float  # A
    curve: str = "SI"
    tms: float = 0.1  # time multiplier (DT: seconds)
    high_set: float = 0.0  # A, 0: none
    high_set_delay: float = 0.0  # s
    earth_pickup: float = 0.0  # A of residual current, 0: no earth-fault element
    earth_curve: str = "SI"
    earth_tms: float = 0.1
    reclose: tuple[float, ...] = ()  # auto-reclose dead times, s (one per shot, at most 4)
    reclaim: float = 10.0  # s closed without a trip before the sequence resets


@dataclass(frozen=True)
class Switch:
    name: str
    a: str  # from node
    b: str  # to node
    closed: bool = True
    operate_time: float = 0.06  # s from trip command to open contacts
    protection: Protection | None = None


@dataclass(frozen=True)
class Load:
    name: str
    node: str
    peak: float  # VA at the shape's maximum
    power_factor: float
    shape: tuple[float, ...]  # 48 half-hourly values, max 1
    noise: float = 0.0  # relative standard deviation
    utc_offset_h: float = 0.0


@dataclass(frozen=True)
class Busbar:
    name: str
    node: str


@dataclass
class PlantData:
    source: Source
    transformers: list[Transformer] = field(default_factory=list)
    switches: list[Switch] = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)
    busbars: list[Busbar] = field(default_factory=list)

    def equipment(self) -> list[tuple[str, str]]:
        """(name, type) in output-block order."""
        return ([(self.source.name, "source")] + [(t.name, "transformer") for t in self.transformers]
                + [(s.name, "switch") for s in self.switches] + [(ld.name, "load") for ld in self.loads]
                + [(b.name, "busbar") for b in self.busbars])


class PlantRefError(ValueError):
    """A plant reference or topology the solver cannot run; the message says which and how to fix it."""


def load(name: str, node: str, peak_va: float, power_factor: float, shape="mixed-feeder", noise: float = 0.0,
         utc_offset_h: float = 0.0) -> Load:
    return Load(name, node, peak_va, power_factor, shape_values(shape), noise, utc_offset_h)


def node_order(p: PlantData) -> tuple[list[str], list[int], list[int], list[int]]:
    """Nodes in pre-order of the switch forest: (names, parent, parent switch, sign of that switch).

    The sign is +1 when the parent is the switch's from-side, so flow parent→child is
    from→to positive. Raises PlantRefError on a switch loop.
    """
    names: list[str] = list(dict.fromkeys(
        [p.source.node] + [n for t in p.transformers for n in (t.hv, t.lv)] + [n for s in p.switches for n in (s.a, s.b)]
        + [ld.node for ld in p.loads] + [b.node for b in p.busbars]))
    adj: dict[str, list[tuple[str, int, int]]] = {n: [] for n in names}
    for k, s in enumerate(p.switches):
        adj[s.a].append((s.b, k, 1))
        adj[s.b].append((s.a, k, -1))
    order: list[str] = []
    parent: dict[str, tuple[str | None, int, int]] = {}
    for root in names:
        if root in parent:
            continue
        parent[root] = (None, -1, 0)
        stack = [root]
        while stack:
            u = stack.pop()
            order.append(u)
            for v, k, sign in reversed(adj[u]):
                if k == parent[u][1]:
                    continue
                if v in parent:
                    raise PlantRefError(f"switch {p.switches[k].name!r} closes a loop of switches; meshed switching is not supported")
                parent[v] = (u, k, sign)
                stack.append(v)
    pos = {n: i for i, n in enumerate(order)}
    par = [pos[parent[n][0]] if parent[n][0] is not None else -1 for n in order]
    return order, par, [parent[n][1] for n in order], [parent[n][2] for n in order]


def compile_plant(p: PlantData) -> dict:
    """The flat parameter set: ``ints`` (counts, then topology) and ``dbl`` (electrical data)."""
    order, par, pedge, psign = node_order(p)
    pos = {n: i for i, n in enumerate(order)}
    n, ns, nt, nl, nb = len(order), len(p.switches), len(p.transformers), len(p.loads), len(p.busbars)
    ints = array("i", [n, ns, nt, nl, nb, pos[p.source.node]])
    ints.extend(par)
    ints.extend(pedge)
    ints.extend(psign)
    ints.extend(pos[s.a] for s in p.switches)
    ints.extend(pos[s.b] for s in p.switches)
    ints.extend(pos[t.hv] for t in p.transformers)
    ints.extend(pos[t.lv] for t in p.transformers)
    ints.extend(pos[ld.node] for ld in p.loads)
    ints.extend(pos[b.node] for b in p.busbars)
    s = p.source
    dbl = array("d", [s.voltage, s.r, s.x, s.frequency])
    dbl.extend(float(CLOSED if w.closed else OPEN) for w in p.switches)
    dbl.extend(w.operate_time for w in p.switches)
    dbl.extend(w.protection.pickup if w.protection else 0.0 for w in p.switches)
    dbl.extend(float(CURVES[w.protection.curve]) if w.protection else 0.0 for w in p.switches)
    dbl.extend(w.protection.tms if w.protection else 0.0 for w in p.switches)
    dbl.extend(w.protection.high_set if w.protection else 0.0 for w in p.switches)
    dbl.extend(w.protection.high_set_delay if w.protection else 0.0 for w in p.switches)
    dbl.extend(float(len(w.protection.reclose)) if w.protection else 0.0 for w in p.switches)
    for w in p.switches:
        dead = list(w.protection.reclose) if w.protection else []
        if len(dead) > AR_MAX_SHOTS:
            raise PlantRefError(f"switch {w.name!r}: at most {AR_MAX_SHOTS} reclose shots")
        dbl.extend(dead + [0.0] * (AR_MAX_SHOTS - len(dead)))
    dbl.extend(w.protection.reclaim if w.protection else 0.0 for w in p.switches)
    dbl.extend(w.protection.earth_pickup if w.protection else 0.0 for w in p.switches)
    dbl.extend(float(CURVES[w.protection.earth_curve]) if w.protection else 0.0 for w in p.switches)
    dbl.extend(w.protection.earth_tms if w.protection else 0.0 for w in p.switches)
    for attr in ("r", "x", "ratio", "step", "neutral", "tap_min", "tap_max", "tap"):
        dbl.extend(float(getattr(t, attr)) for t in p.transformers)
    for attr in ("target", "band", "delay", "tap_time", "ldc_r", "ldc_x"):  # target 0: no AVC
        dbl.extend(float(getattr(t.avc, attr)) if t.avc else 0.0 for t in p.transformers)
    dbl.extend(t.earthing for t in p.transformers)
    for t in p.transformers:
        if t.vector_group not in VECTOR_GROUPS:
            raise PlantRefError(f"transformer {t.name!r}: vector group {t.vector_group!r}; use one of {', '.join(VECTOR_GROUPS)}")
        dbl.append(VECTOR_GROUPS[t.vector_group])
    for attr in ("peak", "power_factor", "noise", "utc_offset_h"):
        dbl.extend(float(getattr(ld, attr)) for ld in p.loads)
    for ld in p.loads:
        if len(ld.shape) != 48:
            raise PlantRefError(f"load {ld.name!r}: a shape needs 48 half-hourly values")
        dbl.extend(ld.shape)
    n_eq = 1 + nt + ns + nl + nb
    return {"ints": ints, "dbl": dbl, "n_out": n_eq * NQ}


def phase_quantity(quantity: str, phase: str | None) -> str:
    """A phase current reads its own quantity (I_A, I_B, I_C, I_N: unbalanced during faults)."""
    ph = (phase or "").upper()
    return f"I_{ph}" if quantity == "I" and ph in ("A", "B", "C", "N") else quantity


def phase_factor(quantity: str, phase: str | None) -> float:
    """Share of a balanced three-phase quantity seen on one phase (or phase pair)."""
    ph = (phase or "ABC").upper()
    if quantity in ("P", "Q", "S", "P_loss"):
        return 1.0 / 3.0 if ph in ("A", "B", "C") else 1.0
    if quantity in ("V", "V_lv"):
        return 1.0 / math.sqrt(3.0) if ph in ("AN", "BN", "CN", "A", "B", "C") else 1.0
    if quantity in ("I", "I_lv"):
        return 0.0 if ph == "N" else 1.0
    return 1.0


def resolve(p: PlantData, equipment: str, quantity: str) -> int:
    """Output index of (equipment, quantity); PlantRefError names the known equipment or quantities."""
    eqs = p.equipment()
    for k, (name, typ) in enumerate(eqs):
        if name == equipment:
            if quantity not in ALLOWED[typ]:
                raise PlantRefError(
                    f"{typ} {equipment!r} has no quantity {quantity!r}; use one of {', '.join(ALLOWED[typ])}")
            return k * NQ + QI[quantity]
    names = ", ".join(n for n, _ in eqs[:8])
    raise PlantRefError(f"no plant equipment {equipment!r}; the plant has {names}{', ...' if len(eqs) > 8 else ''}")


def writable_target(p: PlantData, ref: int) -> tuple[str, int] | None:
    """("switch", k) / ("tap", k) / ("source", 0) for an output index a command may write, else None."""
    eq, q = divmod(ref, NQ)
    nt, ns = len(p.transformers), len(p.switches)
    name = QUANTITIES[q]
    if name == "position" and 1 + nt <= eq < 1 + nt + ns:
        return "switch", eq - 1 - nt
    if name == "tap" and 1 <= eq <= nt:
        return "tap", eq - 1
    if name == "energised" and eq == 0:
        return "source", 0
    if name == "avc_auto" and 1 <= eq <= nt:
        return "avc", eq - 1
    return None
