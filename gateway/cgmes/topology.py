"""The connectivity gridgate derives from a site's bays (the site model has no explicit topology).

Rules, per substation (documented in README.md so an engineer can predict the export):

* one VoltageLevel per distinct bay ``voltage_kv``; a bay without one is an error (CGMES needs it);
* a voltage level's busbar nodes are its BusbarSections (in file order), or one implicit ``BUS``
  node when it has none;
* a bay holding two or more BusbarSections and switches is a bus section/coupler: its switches
  run in series from the first busbar to the second;
* a transformer bay's switches run in series from a busbar node to the transformer's HV
  terminal; the transformer's LV terminal feeds the next lower voltage level through the n-th
  switch-only bay there (the incomer), in file order;
* a feeder bay (ACLineSegment or EnergyConsumer) hangs off a busbar through its switches; the
  line's far end is a node of its own;
* incomers, feeders and transformer bays are spread over the busbar nodes in contiguous
  blocks in file order (two busbars, six feeders: F1-F3 on the first, F4-F6 on the second);
* the highest voltage level of a substation with transformers gets an ExternalNetworkInjection
  (the grid source) on its first busbar node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.cgmes.vocab import FEEDER_ENDS, SWITCHES
from gateway.config import Config
from gateway.site.model import Bay, Substation


class TopologyError(ValueError):
    """The site cannot be laid out as a CGMES model; the message names the bay and the fix."""


@dataclass(slots=True)
class VoltageLevel:
    key: str  # "KGM/11kV"
    substation: str
    name: str  # "11kV"
    kv: float
    bays: list[str] = field(default_factory=list)  # bay names


@dataclass(slots=True)
class Layout:
    """Nodes and terminals of every equipment; node keys are stable strings (mRIDs derive from them)."""

    levels: dict[str, VoltageLevel] = field(default_factory=dict)
    level_of_bay: dict[str, str] = field(default_factory=dict)  # "SUB/BAY" → level key
    nodes: dict[str, str] = field(default_factory=dict)  # node key → level key (its container)
    terminals: dict[str, list[str]] = field(default_factory=dict)  # equipment path → node key per terminal
    transformer_levels: dict[str, list[str]] = field(default_factory=dict)  # TX path → level key per end
    sources: dict[str, str] = field(default_factory=dict)  # source key "SUB/kV/GRID" → node key


def kv_name(kv: float) -> str:
    return f"{kv:g}kV"


def derive(cfg: Config) -> Layout:
    lay = Layout()
    for s in cfg.substations:
        _substation(s, lay)
    return lay


def _substation(s: Substation, lay: Layout) -> None:
    by_kv: dict[float, list[Bay]] = {}
    for b in s.bays:
        if b.voltage_kv is None:
            raise TopologyError(
                f"substation {s.name} bay {b.name}: no voltage_kv; set it (the CGMES VoltageLevel and BaseVoltage come from it)"
            )
        by_kv.setdefault(b.voltage_kv, []).append(b)
    kvs = sorted(by_kv, reverse=True)
    for kv in kvs:
        vl = VoltageLevel(f"{s.name}/{kv_name(kv)}", s.name, kv_name(kv), kv, [b.name for b in by_kv[kv]])
        lay.levels[vl.key] = vl
        for b in by_kv[kv]:
            lay.level_of_bay[f"{s.name}/{b.name}"] = vl.key

    def node(key: str, level: str) -> str:
        lay.nodes.setdefault(key, level)
        return key

    def chain(start: str, switches: list[str], end: str, level: str, bay_path: str) -> str:
        """Switches in series from node ``start`` to node ``end``; returns the last node (``start`` if none)."""
        here = start
        for i, sw in enumerate(switches):
            nxt = node(end, level) if i == len(switches) - 1 else node(f"{bay_path}/N{i + 1}", level)
            lay.terminals[sw] = [here, nxt]
            here = nxt
        return here

    def spread(items: list, buses: list[str]) -> list[str]:
        return [buses[i * len(buses) // len(items)] for i in range(len(items))]

    buses: dict[float, list[str]] = {}
    for kv in kvs:
        level = f"{s.name}/{kv_name(kv)}"
        bbs = [f"{s.name}/{b.name}/{e.name}" for b in by_kv[kv] for e in b.equipment if e.type == "BusbarSection"]
        buses[kv] = [node(bb, level) for bb in bbs] or [node(f"{level}/BUS", level)]
        for bb in bbs:
            lay.terminals[bb] = [bb]

    pending_lv: dict[float, list[str]] = {kv: [] for kv in kvs}  # LV nodes of transformers, per lower level
    for kv in kvs:
        level = f"{s.name}/{kv_name(kv)}"
        bays = by_kv[kv]
        kinds = {b.name: _kind(b) for b in bays}
        tx_bays = [b for b in bays if kinds[b.name] == "transformer"]
        feeders = [b for b in bays if kinds[b.name] == "feeder"]
        plain = [b for b in bays if kinds[b.name] == "switches"]
        incomers = plain[: len(pending_lv[kv])]
        others = plain[len(pending_lv[kv]):]
        for b, bus in zip(tx_bays, spread(tx_bays, buses[kv])):
            bp = f"{s.name}/{b.name}"
            txs = [f"{bp}/{e.name}" for e in b.equipment if e.type == "PowerTransformer"]
            hv = chain(bus, _switches(b, s), f"{bp}/HV", level, bp)
            lower = [k for k in kvs if k < kv]
            lv_kv = lower[0] if lower else kv
            lv_level = f"{s.name}/{kv_name(lv_kv)}"
            for tx in txs:
                lv = node(f"{tx}/LV", lv_level)
                lay.terminals[tx] = [hv, lv]
                lay.transformer_levels[tx] = [level, lv_level]
                if lower:
                    pending_lv[lv_kv].append(lv)
        for b, bus, lv in zip(incomers, spread(incomers, buses[kv]) if incomers else [], pending_lv[kv]):
            chain(lv, _switches(b, s), bus, level, f"{s.name}/{b.name}")
        for b, bus in zip(feeders, spread(feeders, buses[kv]) if feeders else []):
            bp = f"{s.name}/{b.name}"
            out = chain(bus, _switches(b, s), f"{bp}/OUT", level, bp)
            for e in b.equipment:
                if e.type == "ACLineSegment":
                    lay.terminals[f"{bp}/{e.name}"] = [out, node(f"{bp}/{e.name}/END", level)]
                elif e.type == "EnergyConsumer":
                    lay.terminals[f"{bp}/{e.name}"] = [out]
        for b in [b for b in bays if kinds[b.name] == "source"]:  # the site's own supply, on this level's bus
            for e in b.equipment:
                if e.type == "EnergySource":
                    lay.sources[f"{s.name}/{b.name}/{e.name}"] = buses[kv][0]
                    lay.terminals[f"{s.name}/{b.name}/{e.name}"] = [buses[kv][0]]
        for b in [b for b in bays if kinds[b.name] == "coupler"]:
            bp = f"{s.name}/{b.name}"
            bbs = [f"{bp}/{e.name}" for e in b.equipment if e.type == "BusbarSection"]
            chain(bbs[0], _switches(b, s), bbs[1], level, bp)
        for b, bus in zip(others, spread(others, buses[kv]) if others else []):
            bp = f"{s.name}/{b.name}"
            chain(bus, _switches(b, s), f"{bp}/OUT", level, bp)
    explicit = any(e.type == "EnergySource" for b in s.bays for e in b.equipment)
    if not explicit and any(tx.startswith(f"{s.name}/") for tx in lay.transformer_levels):
        top = f"{s.name}/{kv_name(kvs[0])}"
        lay.sources[f"{top}/GRID"] = buses[kvs[0]][0]


def _switches(b: Bay, s: Substation) -> list[str]:
    return [f"{s.name}/{b.name}/{e.name}" for e in b.equipment if e.type in SWITCHES]


def _kind(b: Bay) -> str:
    types = [e.type for e in b.equipment]
    if "PowerTransformer" in types:
        return "transformer"
    if "EnergySource" in types:
        return "source"
    if any(t in FEEDER_ENDS for t in types):
        return "feeder"
    if types.count("BusbarSection") >= 2 and any(t in SWITCHES for t in types):
        return "coupler"
    if any(t in SWITCHES for t in types):
        return "switches"
    return "busbar"
