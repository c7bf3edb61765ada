// gridgate mimic: wiring of MQTT (over WebSockets) → model → diagram, alarms, status bar, control.
import * as M from "./model.js";
import { Diagram } from "./diagram.js";
import { AlarmView, Tooltip, TrendView, utcTime } from "./views.js";
import { ControlDialog } from "./control.js";

const $ = (id) => document.getElementById(id);

const state = {
  site: null, prefix: "gridgate/v1", gateway: null,
  catalog: new Map(), byTopic: new Map(), readings: new Map(), status: null,
  broker: "connecting", alarms: new M.AlarmList(), trends: new M.TrendStore(60, 4000),
  topology: [], changed: new Set(), rebuild: false, client: null,
  received: 0, readyAt: null, // messages handled; performance.now() when every breaker first showed a position
  marks: { script: performance.now() }, // load milestones (ms since navigation) for bench/bench_hmi.py
};
window.gridgateHmi = state; // for diagnostics in the browser console and for tests

function controlState() {
  if (!state.site) return { ok: false, why: "no site description" };
  if (state.broker !== "connected") return { ok: false, why: "broker not connected" };
  if (!state.status || state.status.state !== "online") return { ok: false, why: "gateway not online" };
  if (!state.site.commandsEnabled) return { ok: false, why: "commands are off in the site config (gateway.northbound.commands)" };
  if (state.status.commands === false) return { ok: false, why: "gateway accepts no commands (its network profile allows no inbound traffic)" };
  return { ok: true, why: "" };
}

function commandable(mrid) {
  return !!state.site?.commands?.[mrid];
}

function describe(mrid) {
  const e = state.catalog.get(mrid), r = state.readings.get(mrid);
  if (!e) return [mrid];
  const lines = [`${e.substation}/${e.bay}/${e.equipment} ${e.name}`, `${e.type}${e.phases ? " " + e.phases : ""}`];
  if (!r) return [...lines, "no value yet"];
  if (r.error) return [...lines, `BAD payload: ${r.error}`];
  lines.push(`value ${M.formatValue(e, r)}`);
  lines.push(`quality ${r.validity}${r.flags.length ? " (" + r.flags.join(", ") + ")" : ""}`);
  lines.push(`source time ${utcTime(r.ts)} UTC, age ${M.ageText(Date.now() - r.ts)}`);
  if (r.seq !== null) lines.push(`seq ${r.seq}${r.device ? ", device " + r.device : ""}`);
  if (commandable(mrid)) lines.push(controlState().ok ? "click to control (select-before-operate)" : `control unavailable: ${controlState().why}`);
  return lines;
}

const tooltip = new Tooltip($("tooltip"), describe);
const trend = new TrendView($("trend"), state.trends);
const alarmView = new AlarmView($("alarms"), state.alarms, () => schedule());  // an ack may drop a latched TRIP flag
const control = new ControlDialog($("sbo"), {
  publish: (topic, body) => state.client.publish(topic, JSON.stringify(body), { qos: 1 }),
  cmdTopic: (mrid) => `${state.prefix}/${state.gateway}/cmd/${mrid}`,
  readingOf: (mrid) => state.readings.get(mrid),
  controlState,
  event: (a) => { state.alarms.add(a); alarmView.render(); renderStatus(); },
});
const diagram = new Diagram($("diagrams"), {
  catalog: state.catalog, commandable, latched: (mrid) => state.alarms.latched(mrid),
  tooltip: (target, mridOf) => tooltip.attach(target, mridOf),
  onAnalog: (entry) => trend.open(entry),
  onBreaker: (entry, eq, bay) => {
    if (!entry) return;
    if (!commandable(entry.mrid)) { banner(`${bay.name}/${eq.name}: not commandable (no command policy for this point)`, "info"); return; }
    const cs = controlState();
    if (!cs.ok) { banner(`${bay.name}/${eq.name}: control unavailable — ${cs.why}`, "info"); return; }
    control.open(entry, state.site.commands[entry.mrid]);
  },
});

function banner(text, kind = "error") {
  const b = $("banner");
  b.textContent = text; b.dataset.kind = kind; b.hidden = false;
  clearTimeout(banner.t);
  if (kind !== "error") banner.t = setTimeout(() => { b.hidden = true; }, 6000);
}

function alarm(a) { state.alarms.add(a); }

// ------------------------------------------------------------------ messages

function onCatalog(mrid, payload) {
  const { entry, error } = M.parseCatalog(payload, mrid);
  if (error) { alarm({ text: `catalog/${mrid}: bad payload — ${error}`, severity: "bad" }); return; }
  addEntry(entry);
}

function addEntry(entry) {
  const old = state.catalog.get(entry.mrid);
  state.catalog.set(entry.mrid, entry);
  if (entry.topic) state.byTopic.set(entry.topic, entry.mrid);
  if (!old || old.bay !== entry.bay || old.equipment !== entry.equipment || old.type !== entry.type) state.rebuild = true;
}

function onValue(topic, payload) {
  const res = M.parseValue(payload);
  const mrid = res.mrid ?? res.reading?.mrid ?? state.byTopic.get(topic) ?? null;
  if (res.reading?.entry && !state.catalog.has(mrid)) addEntry({ ...res.reading.entry, topic });
  const entry = mrid ? state.catalog.get(mrid) : null;
  if (!entry) {
    if (res.error) alarm({ text: `${topic}: bad payload — ${res.error}`, severity: "bad" });
    else state.readings.set(mrid, res.reading); // catalog entry still to come (compact payloads)
    return;
  }
  const cur = res.error ? { error: res.error, ts: Date.now(), seq: null } : res.reading;
  const prev = state.readings.get(mrid);
  if (!cur.error && prev && !prev.error && prev.seq !== null && cur.seq !== null && cur.seq <= prev.seq && cur.ts <= prev.ts) return; // re-send
  for (const a of M.eventsFor(entry, prev, cur)) alarm(a);
  state.readings.set(mrid, cur);
  if (!cur.error && entry.kind === "Analog") state.trends.push(mrid, cur.ts, cur.value);
  state.changed.add(mrid);
}

function onStatus(payload) {
  const { status, error } = M.parseStatus(payload);
  if (error) { alarm({ text: `status: bad payload — ${error}`, severity: "bad" }); return; }
  const devBay = deviceBays();
  for (const a of M.statusEvents(state.status, status)) alarm({ ...a, bay: a.device ? devBay.get(a.device) ?? "" : "" });
  state.status = status;
  document.body.classList.toggle("gw-offline", status.state !== "online");
}

/** The bay a device serves, when all its points are in one bay (from the provenance of its values). */
function deviceBays() {
  const bays = new Map();
  for (const [m, r] of state.readings) {
    const e = state.catalog.get(m);
    if (!r || r.error || !r.device || !e) continue;
    const b = bays.get(r.device);
    bays.set(r.device, b === undefined || b === e.bay ? e.bay : "");
  }
  return bays;
}

function onMessage(topic, payload) {
  if (state.received++ === 0) state.marks.firstMessage = performance.now();
  const t = M.parseTopic(state.prefix, state.gateway, topic);
  if (!t) return;
  if (t.kind === "status") onStatus(payload);
  else if (t.kind === "catalog") onCatalog(t.mrid, payload);
  else if (t.kind === "meas") onValue(topic, payload);
  else if (t.kind === "result") control.onResult(t.mrid, payload);
  schedule();
}

// ------------------------------------------------------------------ rendering

let queued = false;
function schedule() {
  if (queued) return;
  queued = true;
  requestAnimationFrame(() => {
    queued = false;
    try { render(); } catch (e) { console.error("render failed", e); }
  });
}

let rebuildAt = 0, rebuildCost = 0, flagsAt = -1;
function render() {
  if (state.rebuild) {
    const now = performance.now();
    const gap = Math.max(120, 4 * rebuildCost); // catalog burst: spend at most a fifth of the time rebuilding
    if (now - rebuildAt < gap && state.topology.length) { setTimeout(schedule, gap - (now - rebuildAt) + 5); }
    else {
      state.rebuild = false; rebuildAt = now;
      state.topology = M.buildTopology([...state.catalog.values()], state.site);
      fillBayFilter();
      $("waiting")?.remove();
      diagram.build(state.topology, $("bay-filter").value);
      diagram.update(state.readings);
      state.changed.clear();
      rebuildCost = performance.now() - now;
    }
  }
  // an acknowledgement drops a latched TRIP flag: refresh the flags when the alarm list changed, too
  if (state.changed.size || state.alarms.version !== flagsAt) { diagram.update(state.readings, state.changed); state.changed = new Set(); flagsAt = state.alarms.version; }
  alarmView.render();
  renderStatus();
  if (state.readyAt === null && diagram.breakers.length && diagram.breakers.every((b) => b.g.dataset.state !== "unknown")) state.readyAt = performance.now();
}

function fillBayFilter() {
  const sel = $("bay-filter");
  const cur = sel.value;
  const names = state.topology.flatMap((s) => s.bays.map((b) => b.name));
  sel.replaceChildren(new Option("all bays", ""), ...names.map((n) => new Option(n, n)));
  sel.value = names.includes(cur) ? cur : "";
}

function renderStatus() {
  const gw = $("gw-state");
  const st = state.status ? state.status.state : "unknown";
  gw.textContent = st + (state.status?.reason ? ` (${state.status.reason})` : "");
  gw.dataset.state = st;
  const br = $("broker-state");
  br.textContent = state.broker; br.dataset.state = state.broker;
  const devs = Object.entries(state.status?.devices ?? {});
  const down = devs.filter(([, d]) => !d.connected).map(([n]) => n);
  const ds = $("devices-state");
  ds.textContent = devs.length ? `${devs.length - down.length}/${devs.length} up${down.length ? " — down: " + down.join(", ") : ""}` : "–";
  ds.dataset.down = String(down.length);
  const cs = controlState();
  const c = $("control-state");
  c.textContent = cs.ok ? "available" : `unavailable: ${cs.why}`;
  c.dataset.state = cs.ok ? "available" : "unavailable";
  document.body.classList.toggle("control-off", !cs.ok);
  $("alarm-count").textContent = `${state.alarms.unacked()} unacknowledged`;
}

// ------------------------------------------------------------------ start

function connect() {
  const url = state.site.wsUrl;
  const client = mqtt.connect(url, { clientId: `gridgate-hmi-${Math.random().toString(16).slice(2, 10)}`, protocolVersion: 4,
    clean: true, reconnectPeriod: 2000, connectTimeout: 10000, keepalive: 30 });
  state.client = client;
  client.on("connect", () => {
    state.marks.connected ??= performance.now();
    state.broker = "connected";
    client.subscribe(`${state.prefix}/${state.gateway}/#`, { qos: 1 }, (err) => {
      if (err) banner(`subscribe to ${state.prefix}/${state.gateway}/# refused by the broker: ${err.message || err}`);
    });
    schedule();
  });
  const lost = (now) => {
    if (state.broker === "connected") alarm({ text: `broker connection lost (${url})`, severity: "alarm" });
    state.broker = now;
    schedule();
  };
  client.on("reconnect", () => lost("reconnecting"));
  client.on("offline", () => lost("offline"));
  client.on("close", () => lost(state.broker === "connected" ? "disconnected" : state.broker));
  client.on("error", (e) => { banner(`broker ${url}: ${e.message || e}`); });
  client.on("message", (topic, payload) => {
    try { onMessage(topic, payload); } catch (e) { alarm({ text: `${topic}: could not handle message — ${e.message || e}`, severity: "bad" }); schedule(); }
  });
}

async function main() {
  $("clock").textContent = "";
  setInterval(() => { $("clock").textContent = `${utcTime(Date.now()).slice(11, 19)} UTC`; tooltip.show(); }, 1000);
  $("bay-filter").addEventListener("change", (ev) => { alarmView.bay = ev.target.value; state.rebuild = true; schedule(); });
  $("only-alarms").addEventListener("change", (ev) => { alarmView.onlyAlarms = ev.target.checked; schedule(); });
  $("ack-all").addEventListener("click", () => { state.alarms.ackAll(alarmView.visible()); schedule(); });
  let site;
  try {
    const r = await fetch("/site.json", { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    site = await r.json();
  } catch (e) {
    banner(`could not load /site.json from the HMI server: ${e.message || e}`);
    return;
  }
  state.site = site; state.prefix = site.prefix; state.gateway = site.gateway;
  state.marks.site = performance.now();
  $("site-name").textContent = `${site.site?.description || site.site?.name || "site"} · ${site.gateway}`;
  document.title = `${site.site?.name ?? "gridgate"} mimic`;
  connect();
  renderStatus();
}

main();
