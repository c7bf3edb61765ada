// Single-line diagram in SVG: built once per topology, then only classes and texts change.
import * as M from "./model.js";

const NS = "http://www.w3.org/2000/svg";
const MAX_FEEDERS = 24; // beyond this many feeders a substation shows the chosen bay (the rest: bay filter)
const ANALOG_ORDER = ["ThreePhaseActivePower", "LineCurrent", "Voltage", "LineToLineVoltage", "PhaseVoltage", "ThreePhaseReactivePower", "Frequency", "ThreePhasePower"];

function el(tag, attrs = {}, parent = null, text = null) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

/** Up to `n` analogue points of a bay worth showing beside it: P, one phase current, voltage, ... */
export function bayAnalogs(bay, catalog, n = 4) {
  const pts = bay.equipment.flatMap((q) => q.points.map((m) => catalog.get(m))).filter((e) => e && e.kind !== "Discrete" && e.type !== "TapPosition" && e.kind !== "Accumulator");
  const rank = (e) => { const i = ANALOG_ORDER.indexOf(e.type); return (i < 0 ? 99 : i) * 10 + (e.phases && !["A", "AB", "AN", "ABC"].includes(e.phases) ? 5 : 0); };
  const seen = new Set();
  return pts.sort((a, b) => rank(a) - rank(b)).filter((e) => { const k = e.type; if (seen.has(k)) return false; seen.add(k); return true; }).slice(0, n);
}

export class Diagram {
  /** `ctx`: {catalog, commandable(mrid), onBreaker(entry, eq, bay), onAnalog(entry), tooltip, latched(mrid)} */
  constructor(container, ctx) {
    this.container = container;
    this.ctx = ctx;
    this.valueEls = new Map(); // mrid → [text elements]
    this.breakers = []; // {g, bay, eq, entry}
    this.lines = []; // {e, kind: 'bay'|'section', name, sub}
    this.flags = []; // protection markers {g, entries}
    this.subs = [];
  }

  build(topology, bayFilter = "") {
    this.container.replaceChildren();
    this.valueEls.clear();
    this.breakers = []; this.lines = []; this.flags = []; this.taps = [];
    this.subs = topology;
    for (const sub of topology) this._buildSub(sub, bayFilter);
  }

  _buildSub(sub, bayFilter) {
    const { catalog } = this.ctx;
    const limit = sub.feeders.length > MAX_FEEDERS ? new Set(bayFilter ? [bayFilter] : sub.feeders.slice(0, MAX_FEEDERS).map((b) => b.name)) : null;
    const lay = M.layout(sub, limit);
    const wrap = document.createElement("figure");
    wrap.className = "substation";
    const cap = document.createElement("figcaption");
    cap.textContent = `${sub.name}${limit ? ` — showing ${lay.cols.length - sub.incomers.length} of ${sub.feeders.length} feeders; choose a bay for the others` : ""}`;
    wrap.appendChild(cap);
    const svg = el("svg", { viewBox: `0 0 ${lay.width} ${lay.height}`, class: "sld", "data-substation": sub.name, preserveAspectRatio: "xMinYMin meet" });
    wrap.appendChild(svg);
    const pat = el("pattern", { id: "hatch", width: 5, height: 5, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, el("defs", {}, svg));
    el("rect", { width: 5, height: 5, fill: "#4a4a4a" }, pat);
    el("line", { x1: 0, y1: 0, x2: 0, y2: 5, stroke: "#9a9a9a", "stroke-width": 2 }, pat);
    this.container.appendChild(wrap);
    const y = lay.y;
    const hv = sub.transformers.find((t) => t.voltage)?.voltage;
    const lv = sub.incomers.find((t) => t.voltage)?.voltage ?? sub.feeders.find((t) => t.voltage)?.voltage;

    // source bar over the transformers
    if (lay.tcols.length) {
      const xs = lay.tcols.map((c) => c.x);
      const bar = el("line", { x1: Math.min(...xs) - 40, x2: Math.max(...xs) + 40, y1: y.source, y2: y.source, class: "bus hv live" }, svg);
      this.lines.push({ e: bar, kind: "source" });
      el("text", { x: Math.min(...xs) - 40, y: y.source - 10, class: "label" }, svg, `${hv ? hv + " kV " : ""}source`);
    }
    for (const { bay, x } of lay.tcols) {
      const hvcb = bay.equipment.find((q) => q.type === "Breaker");
      const tx = bay.equipment.find((q) => q.type === "PowerTransformer");
      this.lines.push({ e: el("line", { x1: x, x2: x, y1: y.source, y2: y.tx - 22, class: "conn hv" }, svg), kind: "bay", name: bay.name, hv: true });
      this.lines.push({ e: el("line", { x1: x, x2: x, y1: y.tx + 22, y2: bay.incomer ? y.inc - 14 : y.bus, class: "conn" }, svg), kind: "bay", name: bay.name });
      if (hvcb) this._breaker(svg, x, y.hvcb, bay, hvcb);
      const g = el("g", { class: "transformer", "data-bay": bay.name }, svg);
      el("circle", { cx: x, cy: y.tx - 8, r: 14, class: "winding hv" }, g);
      el("circle", { cx: x, cy: y.tx + 8, r: 14, class: "winding" }, g);
      el("text", { x: x - 8, y: y.tx - 30, class: "label bay-name", "text-anchor": "end" }, svg, bay.name);
      if (tx) {
        const tap = tx.points.map((m) => catalog.get(m)).find((e) => e && e.type === "TapPosition");
        if (tap) {
          const t = this._value(svg, x + 22, y.tx - 4, tap, "tap ");
          t.classList.add("tap");
          if (this.ctx.commandable(tap.mrid)) { t.classList.add("commandable"); t.addEventListener("click", () => this.ctx.onBreaker(tap, tx, bay)); }
        }
        const avc = tx.points.map((m) => catalog.get(m)).find((e) => e && e.type === "AvcState");
        if (avc) this._value(svg, x + 22, y.tx - 18, avc, "AVC ").classList.add("avc");
      }
      bayAnalogs(bay, catalog, 2).forEach((e, i) => this._value(svg, x + 22, y.tx + 14 + 14 * i, e));
    }
    // busbar sections and the bus section breaker
    for (const s of lay.sections) {
      const bar = el("line", { x1: s.x0, x2: s.x1, y1: y.bus, y2: y.bus, class: "bus", "data-section": s.name }, svg);
      this.lines.push({ e: bar, kind: "section", name: s.name });
      el("text", { x: s.x0, y: y.bus - 10, class: "label" }, svg, `${s.name}${lv ? " " + lv + " kV" : ""}`);
      const bbEq = sub.busSection ? sub.bays.find((b) => b.name === sub.busSection).equipment.find((q) => q.name === s.name) : null;
      const v = bbEq ? bbEq.points.map((m) => catalog.get(m)).find((e) => e && e.kind === "Analog") : null;
      if (v) this._value(svg, s.x0 + 90, y.bus - 10, v);
    }
    if (lay.busSectionX !== null) {
      const bs = sub.bays.find((b) => b.name === sub.busSection);
      const x = lay.busSectionX;
      this.lines.push({ e: el("path", { d: `M ${lay.sections[0].x1} ${y.bus} H ${x - 12} M ${x + 12} ${y.bus} H ${lay.sections[1].x0}`, class: "conn", fill: "none" }, svg), kind: "bay", name: bs.name });
      const cb = bs.equipment.find((q) => q.type === "Breaker");
      if (cb) this._breaker(svg, x, y.bus, bs, cb);
      el("text", { x, y: y.bus + 30, class: "label bay-name", "text-anchor": "middle" }, svg, bs.name);
    }
    // incomers and feeders
    for (const { bay, x } of lay.cols) {
      const cbs = bay.equipment.filter((q) => q.type === "Breaker");
      const cb = cbs[0];
      // further breakers of the bay: the second in series on the same line, any others beside the first
      const mid = bay.role === "incomer" ? (y.inc + y.bus) / 2 : (y.bus + y.fdr) / 2 - 2;
      const main = bay.role === "incomer" ? y.inc : y.fdr;
      cbs.slice(1).forEach((q, i) => {
        const [bx, by] = i === 0 ? [x, mid] : [x - 28 * i, main];
        this._breaker(svg, bx, by, bay, q);
        el("text", { x: bx - 14, y: by + 4, class: "label small", "text-anchor": "end" }, svg, q.name);
      });
      if (bay.role === "incomer") {
        const hasTx = sub.transformers.some((t) => t.incomer === bay.name);
        this.lines.push({ e: el("line", { x1: x, x2: x, y1: hasTx ? y.inc - 14 : y.source, y2: y.bus, class: "conn" }, svg), kind: "bay", name: bay.name });
        if (cb) this._breaker(svg, x, y.inc, bay, cb);
        el("text", { x: x - 18, y: y.inc + 4, class: "label bay-name", "text-anchor": "end" }, svg, bay.name);
        bayAnalogs(bay, catalog, 2).forEach((e, i) => this._value(svg, x + 18, y.inc - 4 + 14 * i, e));
      } else {
        this.lines.push({ e: el("line", { x1: x, x2: x, y1: y.bus, y2: y.line, class: "conn" }, svg), kind: "bay", name: bay.name });
        el("path", { d: `M ${x - 7} ${y.line - 8} L ${x} ${y.line + 4} L ${x + 7} ${y.line - 8}`, class: "arrow", "data-bay": bay.name }, svg);
        if (cb) this._breaker(svg, x, y.fdr, bay, cb);
        el("text", { x, y: y.label - 26, class: "label bay-name", "text-anchor": "middle" }, svg, bay.name);
        const line = bay.equipment.find((q) => q.type === "ACLineSegment");
        const desc = bay.description || line?.name || "";
        el("text", { x, y: y.label - 12, class: "label small", "text-anchor": "middle" }, svg, desc.length > 18 ? desc.slice(0, 17) + "…" : desc);
        bayAnalogs(bay, catalog, 3).forEach((e, i) => this._value(svg, x + 6, y.fdr + 30 + 14 * i, e, "", "start"));
      }
      const prot = bay.equipment.flatMap((q) => q.points.map((m) => catalog.get(m))).filter((e) => e && (e.type === "ProtectionOperate" || e.type === "ProtectionStart"));
      if (prot.length) {
        const g = el("g", { class: "prot", "data-bay": bay.name }, svg);
        const py = bay.role === "incomer" ? y.inc - 30 : y.fdr - 28;
        el("text", { x: x + 16, y: py, class: "prot-flag" }, g, "");
        this.flags.push({ g, entries: prot });
      }
    }
  }

  _breaker(svg, x, y, bay, eq) {
    const entry = M.primaryPosition(eq, this.ctx.catalog, this.ctx.commandable);
    const g = el("g", { class: "breaker", "data-bay": bay.name, "data-eq": eq.name, "data-state": "unknown", "data-mrid": entry?.mrid ?? "", tabindex: 0, role: "button" }, svg);
    el("rect", { x: x - 11, y: y - 11, width: 22, height: 22, rx: 2 }, g);
    el("text", { x, y: y + 4, "text-anchor": "middle", class: "breaker-mark" }, g, "");
    const b = { g, bay, eq, entry };
    this.breakers.push(b);
    g.addEventListener("click", () => this.ctx.onBreaker(entry, eq, bay));
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") this.ctx.onBreaker(entry, eq, bay); });
    if (entry) this.ctx.tooltip(g, () => entry.mrid);
    return b;
  }

  _value(svg, x, y, entry, prefix = "", anchor = "start") {
    const t = el("text", { x, y, class: "val q-none", "data-mrid": entry.mrid, "text-anchor": anchor, "data-prefix": prefix }, svg, `${prefix}${entry.name}: —`);
    if (!this.valueEls.has(entry.mrid)) this.valueEls.set(entry.mrid, []);
    this.valueEls.get(entry.mrid).push(t);
    this.ctx.tooltip(t, () => entry.mrid);
    if (entry.kind === "Analog") { t.classList.add("trendable"); t.addEventListener("click", () => this.ctx.onAnalog(entry)); }
    return t;
  }

  /** Refresh texts and classes of the points in `mrids` (all when null), then breakers and energisation. */
  update(readings, mrids = null) {
    const { catalog } = this.ctx;
    const todo = mrids ?? this.valueEls.keys();
    for (const m of todo) {
      const els = this.valueEls.get(m);
      if (!els) continue;
      const e = catalog.get(m), r = readings.get(m);
      const q = M.qualityClass(r);
      for (const t of els) {
        const p = t.getAttribute("data-prefix");
        t.textContent = p ? `${p}${M.formatValue(e, r)}` : `${e.name}: ${M.formatValue(e, r)}`;
        t.setAttribute("class", t.getAttribute("class").replace(/q-\w+/, `q-${q}`));
        t.setAttribute("data-quality", q);
      }
    }
    const pos = new Map();
    for (const b of this.breakers) {
      const r = b.entry ? readings.get(b.entry.mrid) : undefined;
      const st = M.breakerState(r);
      pos.set(`${b.bay.name}/${b.eq.name}`, st);
      if (b.g.getAttribute("data-state") !== st) {
        b.g.setAttribute("data-state", st);
        b.g.querySelector(".breaker-mark").textContent = { intermediate: "?", bad: "✕", invalid: "✕", unknown: "?" }[st] ?? "";
      }
      b.g.classList.toggle("commandable", !!b.entry && this.ctx.commandable(b.entry.mrid));
    }
    for (const f of this.flags) {
      const ops = f.entries.filter((e) => e.type === "ProtectionOperate");
      const now = ops.some((e) => readings.get(e.mrid)?.value === 1);
      const op = now || ops.some((e) => this.ctx.latched?.(e.mrid));  // latched until the operator acknowledges
      const st = f.entries.find((e) => e.type === "ProtectionStart" && readings.get(e.mrid)?.value === 1);
      f.g.firstChild.textContent = op ? "TRIP" : st ? "START" : "";
      f.g.setAttribute("data-active", op ? "trip" : st ? "start" : "");
      f.g.setAttribute("data-latched", op && !now ? "true" : "false");
    }
    for (const sub of this.subs) {
      const live = M.energise(sub, (bay, eq) => pos.get(`${bay}/${eq}`) ?? "unknown");
      for (const l of this.lines) {
        if (l.kind === "source") continue;
        const on = l.kind === "section" ? live.sections.has(l.name) : l.hv ? true : live.bays.has(l.name);
        if (l.kind === "section" && !sub.sections.includes(l.name)) continue;
        if (l.kind === "bay" && !sub.bays.some((b) => b.name === l.name)) continue;
        l.e.classList.toggle("live", on);
        l.e.classList.toggle("dead", !on);
        l.e.setAttribute("data-live", on ? "true" : "false");
        if (l.name) l.e.setAttribute("data-bay", l.kind === "section" ? `section:${l.name}` : l.name);
      }
    }
  }
}
