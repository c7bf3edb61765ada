"""The connectivity gridgate derives from a site's bays (the site model has no explicit topology).

Rules, per substation (documented in README.md so an engineer can predict the export):

* the substation's voltage levels (declared, or in an old file one per distinct bay ``voltage_kv``);
  a bay in none is an error (CGMES needs it);
* a voltage level's busbar nodes are its BusbarSections (in file order), or one implicit ``BUS``
  node when it has none;
* a bay holding two or more BusbarSections and switches is a bus section/coupler: its switches
  run in series from the first busbar to the second;
* a transformer bay's switches run in series from a busbar node to the transformer's HV
  terminal; the transformer's LV terminal feeds the next lower voltage level (several levels
  of that voltage: the transformers spread over them in file order) through the n-th
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
from gateway.site.model import VoltageLevel as SiteLevel


class TopologyError(ValueError):
    """The site cannot be laid out as a CGMES model; the message names the bay and the fix."""


@dataclass(slots=True)
class VoltageLevel:
    key: str  # "KGM/11kV"
    substation: str
    name: str  # "11kV"
    kv: float
    bays: list[str] = field(default_factory=list)  # bay names
    decl: SiteLevel | None = None  # the site file's level (None: derived from the bays' voltage_kv)


@dataclass(slots=True)
class Layout:
    """Nodes and terminals of every equipment; node keys are stable strings (mRIDs derive from them)."""

    levels: dict[str, VoltageLevel] = field(default_factory=dict)
    level_of_bay: dict[str, str] = field(default_factory=dict)  # "SUB/BAY" → level key
    nodes: dict[str, str] = field(default_factory=dict)  # node key → level key (its container)
    terminals: dict[str, list[str]] = field(default_factory=dict)  # equipment path → node key per terminal
    transformer_levels: dict[str, list[str]] = field(default_factory=dict)  # TX path → level key per end
    sources: dict[str, str] = field(default_factory=dict)  # source key "SUB/kV/GRID" → node key


def derive(cfg: Config) -> Layout:
    lay = Layout()
    for s in cfg.substations:
        _substation(s, lay)
    return lay


def _substation(s: Substation, lay: Layout) -> None:
    by_level: dict[str, list[Bay]] = {}
    for b in s.bays:
        name = s.level_of(b)
        if name is None:
            raise TopologyError(
                f"substation {s.name} bay {b.name}: no voltage level; declare the substation's voltage_levels and set the"
                " bay's voltage_level (or, in an old site file, its voltage_kv): the CGMES VoltageLevel comes from it"
            )
        by_level.setdefault(name, []).append(b)
    decl = {v.name: v for v in s.levels()}
    # highest voltage first; levels of one voltage in file order (sorted is stable)
    order = sorted((v for v in s.levels() if v.name in by_level), key=lambda v: -v.base_voltage_kv)
    keys = [f"{s.name}/{v.name}" for v in order]
    kv_of = {f"{s.name}/{v.name}": v.base_voltage_kv for v in order}
    bays_of = {f"{s.name}/{v.name}": by_level[v.name] for v in order}
    for v, key in zip(order, keys):
        lay.levels[key] = VoltageLevel(key, s.name, v.name, v.base_voltage_kv, [b.name for b in by_level[v.name]],
                                       None if s.levels_derived else decl[v.name])
        for b in by_level[v.name]:
            lay.level_of_bay[f"{s.name}/{b.name}"] = key
    for v in s.voltage_levels:  # declared levels without bays: in the model, out of the layout
        if v.name not in by_level:
            lay.levels[f"{s.name}/{v.name}"] = VoltageLevel(f"{s.name}/{v.name}", s.name, v.name, v.base_voltage_kv, [], v)

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

    buses: dict[str, list[str]] = {}
    for level in keys:
        bbs = [f"{s.name}/{b.name}/{e.name}" for b in bays_of[level] for e in b.equipment if e.type == "BusbarSection"]
        buses[level] = [node(bb, level) for bb in bbs] or [node(f"{level}/BUS", level)]
        for bb in bbs:
            lay.terminals[bb] = [bb]

    pending_lv: dict[str, list[str]] = {k: [] for k in keys}  # LV nodes of transformers, per lower level
    for level in keys:
        kv = kv_of[level]
        bays = bays_of[level]
        kinds = {b.name: _kind(b) for b in bays}
        tx_bays = [b for b in bays if kinds[b.name] == "transformer"]
        feeders = [b for b in bays if kinds[b.name] == "feeder"]
        plain = [b for b in bays if kinds[b.name] == "switches"]
        incomers = plain[: len(pending_lv[level])]
        others = plain[len(pending_lv[level]):]
        # LV sides go to the next lower voltage; several levels of that voltage share the transformers in file order
        lower = [k for k in keys if kv_of[k] < kv]
        all_tx = [f"{s.name}/{b.name}/{e.name}" for b in tx_bays for e in b.equipment if e.type == "PowerTransformer"]
        lv_of = dict(zip(all_tx, spread(all_tx, [k for k in lower if kv_of[k] == kv_of[lower[0]]]))) if lower and all_tx else {}
        for b, bus in zip(tx_bays, spread(tx_bays, buses[level])):
            bp = f"{s.name}/{b.name}"
            txs = [f"{bp}/{e.name}" for e in b.equipment if e.type == "PowerTransformer"]
            hv = chain(bus, _switches(b, s), f"{bp}/HV", level, bp)
            for tx in txs:
                lv_level = lv_of.get(tx, level)
                lv = node(f"{tx}/LV", lv_level)
                lay.terminals[tx] = [hv, lv]
                lay.transformer_levels[tx] = [level, lv_level]
                if lower:
                    pending_lv[lv_level].append(lv)
        for b, bus, lv in zip(incomers, spread(incomers, buses[level]) if incomers else [], pending_lv[level]):
            chain(lv, _switches(b, s), bus, level, f"{s.name}/{b.name}")
        for b, bus in zip(feeders, spread(feeders, buses[level]) if feeders else []):
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
                    lay.sources[f"{s.name}/{b.name}/{e.name}"] = buses[level][0]
                    lay.terminals[f"{s.name}/{b.name}/{e.name}"] = [buses[level][0]]
        for b in [b for b in bays if kinds[b.name] == "coupler"]:
            bp = f"{s.name}/{b.name}"
            bbs = [f"{bp}/{e.name}" for e in b.equipment if e.type == "BusbarSection"]
            chain(bbs[0], _switches(b, s), bbs[1], level, bp)
        for b, bus in zip(others, spread(others, buses[level]) if others else []):
            bp = f"{s.name}/{b.name}"
            chain(bus, _switches(b, s), f"{bp}/OUT", level, bp)
    explicit = any(e.type == "EnergySource" for b in s.bays for e in b.equipment)
    if not explicit and any(tx.startswith(f"{s.name}/") for tx in lay.transformer_levels):
        lay.sources[f"{keys[0]}/GRID"] = buses[keys[0]][0]


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
