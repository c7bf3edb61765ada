"""The `plant:` section of a site file: one source, transformers, switches, busbar sections, loads.

Equipment are substation/bay/equipment paths of the site; nodes are free connectivity-node
names that join terminals (a switch's ``from``/``to``, a transformer's ``hv``/``lv``, a
busbar's or a load's ``node``). Validation reports the YAML path and the fix; the model
then converts to firmware_sim.plant.PlantData (SI units) for the solver.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from firmware_sim import plant as rt
from firmware_sim.plant_synth import source as make_source
from firmware_sim.plant_synth import transformer as make_transformer
from firmware_sim.spec import PROFILE_SHAPES

#: seconds, written as a number or as 60ms / 2s
Duration = Annotated[float, BeforeValidator(lambda v: parse_duration(v)), Field(ge=0)]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Node = str


class SourceModel(_M):
    """The upstream grid infeed (e.g. the 33 kV network behind the transformer HV breakers)."""

    equipment: str = Field(description="substation/bay/equipment path (type EnergySource)")
    node: Node
    voltage_kv: float = Field(gt=0)
    short_circuit_mva: float = Field(750.0, gt=0, description="three-phase fault level at the node")
    x_r: float = Field(10.0, gt=0)
    frequency_hz: float = Field(50.0, gt=0)


class AvcModel(_M):
    """Automatic voltage control relay of the tap changer (auto at start; a command on `avc_auto` switches it)."""

    target_kv: float = Field(gt=0, description="LV busbar voltage to hold, kV line-line")
    bandwidth_pct: float = Field(1.5, gt=0, le=10, description="± band around the target, %")
    delay: Duration = Field(60.0, description="time out of band before a tap change, e.g. 60s")
    tap_time: Duration = Field(5.0, description="tap changer operating time per step")
    ldc_r_ohm: float = Field(0.0, ge=0, description="line-drop compensation: regulate the voltage this far down the feeders")
    ldc_x_ohm: float = Field(0.0, ge=0)


class TapChanger(_M):
    """On-load tap changer: a raise step increases the LV voltage by step_pct."""

    min: int = 1
    max: int = 17
    neutral: int = 9
    step_pct: float = Field(1.25, gt=0, le=5)
    initial: int | None = Field(None, description="default: neutral")
    avc: AvcModel | None = None

    @model_validator(mode="after")
    def _range(self) -> "TapChanger":
        if not self.min <= self.neutral <= self.max:
            raise ValueError(f"neutral tap {self.neutral} is outside min..max ({self.min}..{self.max})")
        if self.initial is not None and not self.min <= self.initial <= self.max:
            raise ValueError(f"initial tap {self.initial} is outside min..max ({self.min}..{self.max})")
        return self


class TransformerModel(_M):
    equipment: str = Field(description="path of a PowerTransformer")
    hv: Node
    lv: Node
    rating_mva: float = Field(gt=0)
    hv_kv: float = Field(gt=0)
    lv_kv: float = Field(gt=0, description="no-load LV voltage at the neutral tap")
    impedance_pct: float = Field(10.0, gt=0, lt=50, description="on the rating")
    x_r: float = Field(12.0, gt=0)
    neutral_earthing_ohm: float = Field(6.35, gt=0, description="LV neutral earthing resistor (6.35 ohm: ~1 kA at 11 kV)")
    vector_group: Literal["Dyn11", "Dyn1"] = Field(
        "Dyn11", description="delta HV, earthed star LV: an LV earth fault is no earth current on the HV side")
    tap_changer: TapChanger = Field(default_factory=TapChanger)


class ProtectionModel(_M):
    """Overcurrent relay (PTOC) on a breaker: IEC 60255 inverse-time stage plus an optional high-set."""

    pickup_a: float = Field(gt=0, description="start current, A")
    curve: Literal["SI", "VI", "EI", "LTI", "DT"] = Field("SI", description="standard/very/extremely/long-time inverse, definite time")
    tms: float = Field(0.1, gt=0, description="time multiplier (DT: operate time in seconds)")
    high_set_a: float | None = Field(None, gt=0, description="definite-time high-set current, A")
    high_set_delay: Duration = Field(0.05, description="high-set operate time")
    earth_pickup_a: float | None = Field(None, gt=0, description="earth-fault element: residual current start, A")
    earth_curve: Literal["SI", "VI", "EI", "LTI", "DT"] = "SI"
    earth_tms: float = Field(0.1, gt=0)
    reclose: list[Duration] = Field(default_factory=list, max_length=4,
                                    description="auto-reclose dead times, one per shot, e.g. [3s, 15s]; empty: none")
    reclaim: Duration = Field(10.0, description="closed this long without a trip: the reclose sequence resets")


class SwitchModel(_M):
    equipment: str = Field(description="path of a Breaker, Disconnector or LoadBreakSwitch")
    from_: Node = Field(alias="from")
    to: Node
    normal: Literal["open", "closed"] = "closed"
    operate_time: Duration = Field(0.06, description="trip command to open contacts, e.g. 60ms")
    protection: ProtectionModel | None = None


class BusbarModel(_M):
    equipment: str = Field(description="path of a BusbarSection")
    node: Node


class LoadModel(_M):
    """A feeder's demand: a day shape scaled to its peak, constant power at the feeder's power factor."""

    equipment: str = Field(description="path of an ACLineSegment or EnergyConsumer")
    node: Node
    peak_mw: float = Field(gt=0)
    shape: Literal["domestic", "commercial", "industrial", "mixed-feeder", "flat"] | list[float] = "mixed-feeder"
    power_factor: float = Field(0.95, gt=0, le=1)
    noise_pct: float = Field(0.0, ge=0, le=20, description="standard deviation of the demand, % of it")
    utc_offset_h: float = 0.0

    @model_validator(mode="after")
    def _shape(self) -> "LoadModel":
        if isinstance(self.shape, list) and len(self.shape) != 48:
            raise ValueError(f"a custom shape needs 48 half-hourly values, got {len(self.shape)} (or use {PROFILE_SHAPES})")
        return self


TYPES = {
    "source": ("EnergySource",),
    "transformers": ("PowerTransformer",),
    "switches": ("Breaker", "Disconnector", "LoadBreakSwitch"),
    "busbars": ("BusbarSection",),
    "loads": ("ACLineSegment", "EnergyConsumer"),
}


class PlantModel(_M):
    source: SourceModel
    transformers: list[TransformerModel] = Field(default_factory=list)
    switches: list[SwitchModel] = Field(default_factory=list)
    busbars: list[BusbarModel] = Field(default_factory=list)
    loads: list[LoadModel] = Field(default_factory=list)

    def items(self):
        """(YAML path, section, item) of every equipment."""
        yield "plant.source", "source", self.source
        for sec in ("transformers", "switches", "busbars", "loads"):
            for i, x in enumerate(getattr(self, sec)):
                yield f"plant.{sec}[{i}]", sec, x

    @model_validator(mode="after")
    def _topology(self) -> "PlantModel":
        errors: list[str] = []
        seen: dict[str, str] = {}
        for path, _, x in self.items():
            if x.equipment in seen:
                errors.append(f"@{path.removeprefix('plant.')}.equipment: {x.equipment!r} is already used by {seen[x.equipment]};"
                              " each plant item is one equipment")
            seen.setdefault(x.equipment, path)
        for i, t in enumerate(self.transformers):
            if t.hv == t.lv:
                errors.append(f"@transformers[{i}].lv: the LV node must differ from the HV node {t.hv!r}")
        for i, s in enumerate(self.switches):
            if s.from_ == s.to:
                errors.append(f"@switches[{i}].to: a switch joins two different nodes, both are {s.to!r}")
        if errors:
            raise ValueError("\n".join(errors))
        # the switch graph must be a forest; every node must reach the source through switches and transformers
        parent: dict[str, str] = {}

        def root(n: str) -> str:
            while parent.get(n, n) != n:
                n = parent[n]
            return n

        for i, s in enumerate(self.switches):
            a, b = root(s.from_), root(s.to)
            if a == b:
                errors.append(f"@switches[{i}]: {s.equipment} closes a loop of switches ({s.from_} - {s.to}){_LOOP_FIX}"
                              + (_NOP_FIX if s.normal == "open" else ""))
            parent[a] = b
        src_tree = root(self.source.node)
        lv_trees = set()
        for i, t in enumerate(self.transformers):
            if root(t.hv) != src_tree:
                errors.append(f"@transformers[{i}].hv: node {t.hv!r} has no switch path to the source node "
                              f"{self.source.node!r}; connect it with the transformer's HV breaker")
            elif root(t.lv) == src_tree:
                errors.append(f"@transformers[{i}].lv: node {t.lv!r} is on the source's side too; "
                              "an LV node must only be fed through the transformer")
            else:
                lv_trees.add(root(t.lv))
            if abs(t.hv_kv - self.source.voltage_kv) > 0.15 * self.source.voltage_kv:
                errors.append(f"@transformers[{i}].hv_kv: {t.hv_kv} kV does not match the source's "
                              f"{self.source.voltage_kv} kV")
        fed = lv_trees | {src_tree}
        for sec, what in (("busbars", "busbar section"), ("loads", "load")):
            for i, x in enumerate(getattr(self, sec)):
                if root(x.node) not in fed:
                    errors.append(f"@{sec}[{i}].node: {what} {x.equipment} at node {x.node!r} has no path to the "
                                  "source; connect the node with a switch to a busbar section fed by a transformer")
                elif sec == "loads" and root(x.node) == src_tree:
                    errors.append(f"@loads[{i}].node: load {x.equipment} at node {x.node!r} is on the source's "
                                  f"{self.source.voltage_kv:g} kV network; gridgate feeds loads through a transformer: "
                                  "connect it to a busbar section on a transformer's LV side")
        first_lv: dict[str, int] = {}  # transformers whose LV sides switches can join run in parallel: same LV voltage
        for i, t in enumerate(self.transformers):
            r = root(t.lv)
            if r == src_tree or root(t.hv) != src_tree:
                continue
            j = first_lv.setdefault(r, i)
            other = self.transformers[j]
            if j != i and abs(t.lv_kv - other.lv_kv) > 0.05 * other.lv_kv:
                errors.append(f"@transformers[{i}].lv_kv: {t.lv_kv:g} kV, but switches can parallel its LV side with "
                              f"transformers[{j}] ({other.lv_kv:g} kV); give parallel transformers the same LV voltage "
                              "or take the switch that joins their LV sides out of the plant")
        if errors:
            raise ValueError("\n".join(errors))
        return self

    def runtime(self) -> rt.PlantData:
        """The solver's plain data, in SI units."""
        s = self.source
        src = make_source(s.equipment, s.node, s.voltage_kv, s.short_circuit_mva, s.x_r)
        src = rt.Source(src.name, src.node, src.voltage, src.r, src.x, s.frequency_hz)
        txs = [make_transformer(t.equipment, t.hv, t.lv, t.rating_mva, t.impedance_pct, t.x_r, t.hv_kv, t.lv_kv,
                                t.tap_changer.step_pct, (t.tap_changer.min, t.tap_changer.neutral, t.tap_changer.max),
                                t.tap_changer.initial, _avc(t.tap_changer.avc), t.neutral_earthing_ohm, t.vector_group)
               for t in self.transformers]
        sws = [rt.Switch(w.equipment, w.from_, w.to, w.normal == "closed", w.operate_time, _relay(w.protection))
               for w in self.switches]
        lds = [rt.load(ld.equipment, ld.node, ld.peak_mw * 1e6 / ld.power_factor, ld.power_factor, ld.shape,
                       ld.noise_pct / 100.0, ld.utc_offset_h) for ld in self.loads]
        bbs = [rt.Busbar(b.equipment, b.node) for b in self.busbars]
        return rt.PlantData(src, txs, sws, lds, bbs)


_LOOP_FIX = ("; gridgate solves radial networks and transformers in parallel at a busbar (a closed bus section "
             "between two incomers), not meshes: remove the switch or split a node (docs/plant-topology.md)")
_NOP_FIX = (". A normally open point between feeders is not supported yet: leave it out of the plant (each "
            "feeder stays radial) or model the back-fed section as its own load")


def _avc(a: AvcModel | None) -> rt.Avc | None:
    if a is None:
        return None
    return rt.Avc(a.target_kv * 1e3, a.bandwidth_pct / 100.0, a.delay, a.tap_time, a.ldc_r_ohm, a.ldc_x_ohm)


def _relay(p: ProtectionModel | None) -> rt.Protection | None:
    if p is None:
        return None
    return rt.Protection(p.pickup_a, p.curve, p.tms, p.high_set_a or 0.0, p.high_set_delay, p.earth_pickup_a or 0.0,
                         p.earth_curve, p.earth_tms, tuple(p.reclose), p.reclaim)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(v: object) -> float:
    """`60ms`, `0.5s` or a number of seconds (relay and breaker times are short)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and (m := _DURATION.match(v)):
        return float(m.group(1)) * {"ms": 0.001, "m": 60.0}.get(m.group(2) or "s", 1.0)
    raise ValueError(f"expected a time such as 60ms, 0.5s or 2m, got {v!r}")
