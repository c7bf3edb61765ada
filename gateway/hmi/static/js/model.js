// gridgate HMI: payload handling and state, no DOM (unit-tested with `node --test`).
// Everything here is derived from what the gateway publishes on MQTT (docs/mqtt-topics.md),
// so it doubles as a check that the topic and payload contract is enough for a third-party HMI.

export const POSITION = { 0: "intermediate", 1: "open", 2: "closed", 3: "bad" };
/** The automatic voltage control relay's state code (measurementType AvcState, docs/avc-state-points.md). */
export const AVC_STATE = { 0: "manual", 1: "in band", 2: "timing", 3: "tapping", 4: "locked out", 5: "blocked" };
export const OPEN = 1;
export const CLOSED = 2;
const FLAG_NAMES = ["overFlow", "outOfRange", "badReference", "oscillatory", "failure", "oldData",
  "inconsistent", "inaccurate", "test", "operatorBlocked", "suspect"];
const VALIDITIES = new Set(["GOOD", "QUESTIONABLE", "INVALID"]);

/** Split a topic under `{prefix}/{gateway}/` into what it carries, or null for foreign topics. */
export function parseTopic(prefix, gateway, topic) {
  const base = `${prefix}/${gateway}/`;
  if (!topic.startsWith(base)) return null;
  const rest = topic.slice(base.length);
  if (rest === "status") return { kind: "status" };
  if (rest.startsWith("catalog/")) return { kind: "catalog", mrid: rest.slice(8) };
  if (rest.startsWith("meas/")) return { kind: "meas", path: rest.slice(5) };
  const m = /^cmd\/([^/]+)\/result$/.exec(rest);
  if (m) return { kind: "result", mrid: m[1] };
  return null;
}

function decode(payload) {
  if (typeof payload === "string") return payload;
  return new TextDecoder("utf-8", { fatal: false }).decode(payload);
}

/** JSON object or an error string that names what is wrong. */
export function parseJson(payload) {
  const text = decode(payload);
  let obj;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    return { error: `not JSON (${String(e.message || e).slice(0, 80)})` };
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return { error: "not a JSON object" };
  return { obj };
}

/** A catalog entry (CIM Measurement) or {error}. */
export function parseCatalog(payload, topicMrid) {
  const { obj, error } = parseJson(payload);
  if (error) return { error };
  const psr = obj.powerSystemResource;
  if (typeof obj.mRID !== "string" || !obj.mRID) return { error: "catalog entry without mRID" };
  if (topicMrid && obj.mRID !== topicMrid) return { error: `catalog mRID ${obj.mRID} differs from its topic` };
  if (!psr || typeof psr !== "object" || typeof psr.bay !== "string" || typeof psr.name !== "string")
    return { error: "catalog entry without powerSystemResource {substation, bay, name, type}" };
  return {
    entry: {
      mrid: obj.mRID, name: String(obj.name ?? ""), kind: String(obj.kind ?? "Analog"),
      type: String(obj.measurementType ?? ""), unit: String(obj.unitSymbol ?? ""),
      multiplier: obj.unitMultiplier && obj.unitMultiplier !== "none" ? String(obj.unitMultiplier) : "",
      phases: obj.phases && obj.phases !== "none" ? String(obj.phases) : "", topic: String(obj.topic ?? ""),
      substation: String(psr.substation ?? ""), bay: psr.bay, equipment: psr.name, equipmentType: String(psr.type ?? ""),
    },
  };
}

/** Parse a status payload: {state, devices:{name:{connected}}, commands?} or {error}. */
export function parseStatus(payload) {
  const { obj, error } = parseJson(payload);
  if (error) return { error };
  if (obj.state !== "online" && obj.state !== "offline") return { error: `status.state is ${JSON.stringify(obj.state)}, expected "online" or "offline"` };
  const devices = {};
  if (obj.devices && typeof obj.devices === "object") {
    for (const [name, d] of Object.entries(obj.devices)) devices[name] = { connected: !!(d && d.connected), protocol: d && d.protocol, lastError: d && d.lastError };
  }
  return { status: { state: obj.state, reason: obj.reason ?? null, devices, commands: typeof obj.commands === "boolean" ? obj.commands : null, timeStamp: obj.timeStamp ?? null } };
}

/** A value payload → plain reading, or {error} naming what is wrong (shown as a bad point). */
export function parseValue(payload) {
  const { obj, error } = parseJson(payload);
  if (error) return { error };
  const meas = obj.measurement;
  const mrid = meas && typeof meas.mRID === "string" ? meas.mRID : null;
  if (!mrid) return { error: "value without measurement.mRID" };
  if (!(obj.value === null || typeof obj.value === "number")) return { mrid, error: `value is ${JSON.stringify(obj.value).slice(0, 40)}, not a number` };
  const ts = Date.parse(obj.timeStamp);
  if (Number.isNaN(ts)) return { mrid, error: `timeStamp ${JSON.stringify(obj.timeStamp)} is not ISO 8601` };
  const q = obj.quality;
  if (!q || !VALIDITIES.has(q.validity)) return { mrid, error: "quality.validity missing or not GOOD/QUESTIONABLE/INVALID" };
  const flags = FLAG_NAMES.filter((f) => q[f] === true);
  if (q.source && q.source !== "PROCESS") flags.push(String(q.source).toLowerCase());
  return {
    reading: {
      mrid, value: obj.value, ts, seq: Number.isInteger(obj.seq) ? obj.seq : null,
      validity: q.validity, flags, alias: typeof obj.valueAlias === "string" ? obj.valueAlias : null,
      device: obj.provenance && obj.provenance.device ? String(obj.provenance.device) : null,
      entry: typeof meas.measurementType === "string" ? parseCatalog(JSON.stringify(meas)).entry ?? null : null,
    },
  };
}

/** Display class of a reading: good, questionable (stale/suspect: hatched), invalid (grey), bad (malformed). */
export function qualityClass(r) {
  if (!r) return "none";
  if (r.error) return "bad";
  if (r.validity === "INVALID") return "invalid";
  if (r.validity === "QUESTIONABLE" || r.flags.includes("oldData")) return "questionable";
  return "good";
}

export function formatValue(entry, r) {
  if (!r || r.error || r.value === null || r.value === undefined) return "—";
  const unit = `${entry.multiplier || ""}${entry.unit && entry.unit !== "none" ? entry.unit : ""}`;
  if (entry.type === "AvcState") return AVC_STATE[r.value] ?? String(r.value);
  if (entry.kind !== "Analog") return `${r.alias ?? r.value}${unit && entry.kind === "Accumulator" ? " " + unit : ""}`;
  const v = Math.abs(r.value) >= 100 ? r.value.toFixed(0) : Math.abs(r.value) >= 10 ? r.value.toFixed(1) : r.value.toFixed(2);
  return unit ? `${v} ${unit}` : v;
}

export function ageText(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// ------------------------------------------------------------------ topology

/** Role of a bay from its equipment types (CIM classes in the catalog), so any site lays out without drawing. */
export function bayRole(types) {
  if (types.has("PowerTransformer")) return "transformer";
  if (types.has("BusbarSection")) return "bussection";
  if (types.has("ACLineSegment") || types.has("EnergyConsumer")) return "feeder";
  if (types.has("Breaker") || types.has("Disconnector") || types.has("LoadBreakSwitch")) return "incomer";
  return "other";
}

/** A bay with only switchgear is an incomer unless its name (F1, FDR2) or description says feeder. */
const FEEDER_HINT = /^(f|fdr|feeder)[-_ ]?\d|\bfeeder\b/i;

const natural = (a, b) => a.localeCompare(b, undefined, { numeric: true });

/**
 * Group catalog entries into substations → bays → equipment, give each bay a role and each
 * busbar section its bays. `site` (optional, the server's /site.json) adds descriptions and voltages.
 */
export function buildTopology(entries, site = null) {
  const subs = new Map();
  for (const e of entries) {
    if (!subs.has(e.substation)) subs.set(e.substation, new Map());
    const bays = subs.get(e.substation);
    if (!bays.has(e.bay)) bays.set(e.bay, new Map());
    const eqs = bays.get(e.bay);
    if (!eqs.has(e.equipment)) eqs.set(e.equipment, { name: e.equipment, type: e.equipmentType, points: [] });
    eqs.get(e.equipment).points.push(e.mrid);
  }
  const siteBays = new Map();
  for (const s of site?.substations ?? []) {
    if (!subs.has(s.name)) subs.set(s.name, new Map());
    for (const b of s.bays ?? []) {
      siteBays.set(`${s.name}/${b.name}`, b);
      if (!subs.get(s.name).has(b.name)) subs.get(s.name).set(b.name, new Map()); // configured, no points yet: still drawn
    }
  }
  const out = [];
  for (const sname of [...subs.keys()].sort(natural)) {
    const bays = [];
    for (const [bname, eqs] of [...subs.get(sname).entries()].sort((a, b) => natural(a[0], b[0]))) {
      const sb = siteBays.get(`${sname}/${bname}`);
      for (const eq of sb?.equipment ?? []) if (!eqs.has(eq.name)) eqs.set(eq.name, { name: eq.name, type: eq.type, points: [] });
      const equipment = [...eqs.values()].sort((a, b) => natural(a.name, b.name));
      let role = bayRole(new Set(equipment.map((q) => q.type)));
      if (role === "incomer" && (FEEDER_HINT.test(bname) || FEEDER_HINT.test(sb?.description ?? ""))) role = "feeder";
      bays.push({ name: bname, role, equipment, description: sb?.description ?? "", voltage: sb?.voltage_kv ?? null });
    }
    const of = (role) => bays.filter((b) => b.role === role);
    const bs = of("bussection")[0] ?? null;
    const sections = bs ? bs.equipment.filter((q) => q.type === "BusbarSection").map((q) => q.name) : [];
    if (sections.length === 0) sections.push("BB");
    const incomers = of("incomer"), feeders = of("feeder"), transformers = of("transformer");
    incomers.forEach((b, i) => { b.section = sections[Math.min(sections.length - 1, Math.floor(i * sections.length / Math.max(1, incomers.length)))]; });
    feeders.forEach((b, i) => { b.section = sections[Math.min(sections.length - 1, Math.floor(i * sections.length / Math.max(1, feeders.length)))]; });
    transformers.forEach((b, i) => { b.incomer = incomers[i]?.name ?? null; });
    const direct = transformers.filter((t) => !t.incomer); // no incomer bay: the transformer feeds the busbar itself
    direct.forEach((b, i) => { b.section = sections[Math.min(sections.length - 1, Math.floor(i * sections.length / direct.length))]; });
    out.push({ name: sname, bays, sections, busSection: bs ? bs.name : null, transformers, incomers, feeders, others: of("other") });
  }
  return out;
}

/** The position measurement that drives a breaker symbol: commandable first, then a three-phase indication. */
export function primaryPosition(eq, catalog, commandable) {
  const pos = eq.points.map((m) => catalog.get(m)).filter((e) => e && e.type === "SwitchPosition");
  pos.sort((a, b) => (commandable(b.mrid) - commandable(a.mrid)) || ((b.phases ? 1 : 0) - (a.phases ? 1 : 0)) || natural(a.name, b.name));
  return pos[0] ?? null;
}

/** Breaker state for drawing: open / closed / intermediate / bad / invalid / unknown. */
export function breakerState(r) {
  if (!r || r.error) return r && r.error ? "bad" : "unknown";
  if (r.validity === "INVALID") return "invalid";
  return POSITION[r.value] ?? "bad";
}

/**
 * Energised sections: the source is live; a transformer is live when its HV breaker (if any) is
 * closed; an incomer feeds its section when closed; the bus section couples sections; a feeder is
 * live when its section is live and its breaker closed. Unknown or invalid positions do not energise.
 */
export function energise(sub, posOf) {
  const closed = (bay, eqType = "Breaker", name = null) => {
    const eqs = bay.equipment.filter((q) => q.type === eqType && (name === null || q.name === name));
    if (eqs.length === 0) return true; // no switch there: solidly connected
    return eqs.every((q) => posOf(bay.name, q.name) === "closed");
  };
  const live = { bays: new Set(), sections: new Set() };
  const byName = new Map(sub.bays.map((b) => [b.name, b]));
  for (const t of sub.transformers) if (closed(t)) { live.bays.add(t.name); if (!t.incomer && t.section) live.sections.add(t.section); }
  for (const inc of sub.incomers) {
    const tx = sub.transformers.find((t) => t.incomer === inc.name);
    const fed = tx ? live.bays.has(tx.name) : true;
    if (fed && closed(inc)) { live.bays.add(inc.name); live.sections.add(inc.section); }
  }
  if (sub.busSection && sub.sections.length > 1) {
    const bs = byName.get(sub.busSection);
    const cb = bs.equipment.find((q) => q.type === "Breaker");
    if (!cb || posOf(bs.name, cb.name) === "closed") {
      if (sub.sections.some((s) => live.sections.has(s))) { sub.sections.forEach((s) => live.sections.add(s)); live.bays.add(bs.name); }
    }
  }
  for (const f of sub.feeders) if (live.sections.has(f.section) && closed(f)) live.bays.add(f.name);
  return live;
}

// ------------------------------------------------------------------ layout

export const GRID = { col: 120, top: 30, width: 0 };

/**
 * Positions for the diagram: the 33 kV source bar on top, each transformer above its incomer,
 * incomers and feeders in columns under their busbar section, sections side by side with the bus
 * section breaker between them. Returns {width, height, cols: [{bay, x}], sections: [{name, x0, x1}], busSectionX}.
 * `onlyBays` (a Set) limits the feeders drawn (large sites: the rest are reachable by bay).
 */
export function layout(sub, onlyBays = null) {
  const col = GRID.col;
  let x = col / 2 + 20;
  const cols = [], sections = [];
  let busSectionX = null;
  const direct = new Map();
  sub.sections.forEach((s, i) => {
    const x0 = x - col / 2 + 10;
    for (const t of sub.transformers.filter((t) => !t.incomer && t.section === s)) { direct.set(t.name, x); x += col; }
    for (const b of sub.incomers.filter((b) => b.section === s)) { cols.push({ bay: b, x }); x += col; }
    for (const b of sub.feeders.filter((b) => b.section === s && (!onlyBays || onlyBays.has(b.name)))) { cols.push({ bay: b, x }); x += col; }
    if (x - col / 2 + 10 <= x0 + 20) x += col; // empty section still gets room
    const x1 = x - col / 2 - 10;
    sections.push({ name: s, x0, x1 });
    if (i < sub.sections.length - 1) { if (i === 0) busSectionX = x; x += col; }
  });
  const tcols = sub.transformers.map((t, i) => {
    const inc = cols.find((c) => c.bay.name === t.incomer);
    return { bay: t, x: inc ? inc.x : direct.get(t.name) ?? col / 2 + 20 + i * col };
  });
  return { width: Math.max(x, 400), height: 560, cols, tcols, sections, busSectionX,
    y: { source: 40, hvcb: 95, tx: 165, inc: 250, bus: 320, fdr: 390, line: 450, label: 500 } };
}

// ------------------------------------------------------------------ alarms

/**
 * Alarm and event list. Entries keep the publisher's `seq` (SOE order as published); status-derived
 * ones (comms) take the arrival order. Bounded: the oldest acknowledged go first.
 */
export class AlarmList {
  constructor(max = 5000) { this.max = max; this.items = []; this.n = 0; this.version = 0; this.lastSeq = 0; }

  add(a) {
    const item = { id: ++this.n, acked: false, alarm: true, ts: Date.now(), seq: null, bay: "", ...a };
    // one total order: a value's seq; an entry without one (comms, commands) right after the last seq seen
    if (item.seq !== null) this.lastSeq = Math.max(this.lastSeq, item.seq);
    item.order = item.seq ?? this.lastSeq + 0.5;
    this.version++;
    this.items.push(item);
    if (this.items.length > this.max) {
      const i = this.items.findIndex((x, k) => (x.acked || !x.alarm) && k < this.items.length - 1);
      this.items.splice(i >= 0 ? i : 0, 1);
    }
    return item;
  }

  ack(id) { const a = this.items.find((x) => x.id === id); if (a) { a.acked = true; this.version++; } return !!a; }

  ackAll(items) { for (const a of items) a.acked = true; this.version++; }

  /** Newest first in the publisher's seq order (SOE). Filter by bay ("" = all). */
  view(bay = "") {
    const xs = bay ? this.items.filter((a) => a.bay === bay) : this.items.slice();
    return xs.sort((a, b) => b.order - a.order || b.id - a.id);
  }

  unacked() { return this.items.filter((a) => a.alarm && !a.acked).length; }

  /** A latching alarm of this point (a protection operate) not yet acknowledged: its flag stays up, as on a relay's
   *  front panel, although the operate itself lasts one relay cycle (the breaker clears the fault, the relay resets). */
  latched(mrid) { return this.items.some((a) => a.latch && a.mrid === mrid && !a.acked); }
}

/** Alarms/events a new reading raises, compared with the previous one of the same point. */
export function eventsFor(entry, prev, cur) {
  const out = [];
  const where = `${entry.bay}/${entry.equipment}`;
  // source time as published; a time before 2000 is an unset device clock: then the time it arrived
  const base = { bay: entry.bay, mrid: entry.mrid, seq: cur.seq ?? null, ts: cur.ts > 946684800000 ? cur.ts : Date.now() };
  if (cur.error) return [{ ...base, text: `${where} ${entry.name}: bad payload — ${cur.error}`, severity: "bad" }];
  const pq = prev && !prev.error ? prev.validity : null;
  if (prev && pq !== cur.validity) {
    const flags = cur.flags.length ? ` (${cur.flags.join(", ")})` : "";
    out.push({ ...base, text: `${where} ${entry.name}: quality ${pq ?? "bad"} → ${cur.validity}${flags}`, severity: cur.validity === "GOOD" ? "normal" : "alarm", alarm: cur.validity !== "GOOD" });
  }
  if (cur.validity === "INVALID") return out;
  if (entry.type === "SwitchPosition" && prev && !prev.error && prev.value !== cur.value && prev.value !== null) {
    out.push({ ...base, text: `${where}: breaker ${POSITION[prev.value] ?? prev.value} → ${POSITION[cur.value] ?? cur.value}`, severity: "event", alarm: cur.value !== CLOSED && cur.value !== OPEN });
  }
  if ((entry.type === "ProtectionStart" || entry.type === "ProtectionOperate") && cur.value === 1 && (!prev || prev.value !== 1)) {
    const operate = entry.type === "ProtectionOperate";
    out.push({ ...base, text: `${where}: protection ${operate ? "operate (trip)" : "start"} ${entry.name}`, severity: "alarm", latch: operate });
  }
  if (entry.type === "TapPosition" && prev && !prev.error && prev.value !== null && prev.value !== cur.value) {
    out.push({ ...base, text: `${where}: tap ${prev.value} → ${cur.value}`, severity: "event", alarm: false });
  }
  return out;
}

/** Comms events from two successive status payloads. */
export function statusEvents(prev, cur) {
  const out = [];
  if (!prev || prev.state !== cur.state) {
    out.push({ text: `gateway ${cur.state}${cur.reason ? ` (${cur.reason})` : ""}`, severity: cur.state === "online" ? "normal" : "alarm", alarm: cur.state !== "online" });
  }
  for (const [name, d] of Object.entries(cur.devices)) {
    const was = prev?.devices?.[name];
    if ((was ? was.connected : true) !== d.connected) {
      out.push({ text: `device ${name}: comms ${d.connected ? "restored" : "lost"}${!d.connected && d.lastError ? ` (${d.lastError})` : ""}`, severity: d.connected ? "normal" : "alarm", alarm: !d.connected, device: name });
    }
  }
  return out;
}

// ------------------------------------------------------------------ trends and commands

/** Per-point ring of (t, v) for the last `minutes` minutes, at most `cap` samples. */
export class TrendStore {
  constructor(minutes = 15, cap = 3000) { this.span = minutes * 60000; this.cap = cap; this.series = new Map(); }

  push(mrid, ts, v) {
    if (typeof v !== "number") return;
    let s = this.series.get(mrid);
    if (!s) { s = { t: [], v: [] }; this.series.set(mrid, s); }
    s.t.push(ts); s.v.push(v);
    const cut = ts - this.span;
    let drop = 0;
    while (drop < s.t.length && (s.t[drop] < cut || s.t.length - drop > this.cap)) drop++;
    if (drop) { s.t.splice(0, drop); s.v.splice(0, drop); }
  }

  /** uPlot data [[seconds], [values]], the last `minutes` (default: all kept) before the newest sample. */
  data(mrid, minutes = null) {
    const s = this.series.get(mrid) ?? { t: [], v: [] };
    let i = 0;
    if (minutes !== null && s.t.length) { const cut = s.t[s.t.length - 1] - minutes * 60000; while (i < s.t.length && s.t[i] < cut) i++; }
    return [s.t.slice(i).map((t) => t / 1000), s.v.slice(i)];
  }
}

/** The documented command request (docs/mqtt-topics.md, Commands). */
export function commandRequest(id, value, operator, now = new Date()) {
  if (!operator || !operator.trim()) throw new Error("operator name is required");
  return { id, value, operator: operator.trim(), issued: now.toISOString() };
}

/** A command result → {status, reason} or {error}. */
export function parseResult(payload) {
  const { obj, error } = parseJson(payload);
  if (error) return { error };
  if (typeof obj.status !== "string") return { error: "result without status" };
  const detail = typeof obj.detail === "string" ? obj.detail : null;
  const ok = obj.status === "done" || obj.status === "accepted";
  return { result: { id: obj.id ?? null, status: obj.status, ok, reason: obj.reason ?? null, detail } };
}
