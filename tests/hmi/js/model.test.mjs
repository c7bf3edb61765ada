// Unit tests of the HMI's payload handling, topology and layout (node --test; run by tests/hmi/test_js.py).
import test from "node:test";
import assert from "node:assert/strict";
import * as M from "../../../gateway/hmi/static/js/model.js";

let n = 0;
function entry(bay, equipment, equipmentType, type, extra = {}) {
  n += 1;
  return { mrid: `m${n}`, name: extra.name ?? type, kind: extra.kind ?? (type === "SwitchPosition" ? "Discrete" : "Analog"),
    type, unit: extra.unit ?? "", multiplier: "", phases: extra.phases ?? "", topic: "", substation: "KGM", bay, equipment, equipmentType };
}

function kingsmead() {
  const es = [];
  for (const t of ["T1", "T2"]) { es.push(entry(t, "TX", "PowerTransformer", "TapPosition", { kind: "Discrete" })); es.push(entry(t, "HVCB", "Breaker", "SwitchPosition")); }
  for (const b of ["INC1", "INC2"]) es.push(entry(b, "CB", "Breaker", "SwitchPosition", { phases: "ABC" }));
  es.push(entry("BS", "CB", "Breaker", "SwitchPosition"));
  es.push(entry("BS", "BB1", "BusbarSection", "Voltage", { unit: "V" }));
  es.push(entry("BS", "BB2", "BusbarSection", "Voltage", { unit: "V" }));
  for (let i = 1; i <= 6; i++) { es.push(entry(`F${i}`, "CB", "Breaker", "SwitchPosition")); es.push(entry(`F${i}`, "FDR", "ACLineSegment", "LineCurrent", { unit: "A", phases: "A" })); }
  return es;
}

const value = (over = {}) => JSON.stringify({ mRID: "v1", measurement: { mRID: "m1" }, value: 182.4,
  timeStamp: "2026-11-22T15:49:12.345Z", quality: { validity: "GOOD", source: "PROCESS" }, seq: 7, ...over });

test("topics are split by kind; foreign topics are ignored", () => {
  assert.deepEqual(M.parseTopic("gridgate/v1", "gw", "gridgate/v1/gw/status"), { kind: "status" });
  assert.deepEqual(M.parseTopic("gridgate/v1", "gw", "gridgate/v1/gw/catalog/abc"), { kind: "catalog", mrid: "abc" });
  assert.deepEqual(M.parseTopic("gridgate/v1", "gw", "gridgate/v1/gw/cmd/abc/result"), { kind: "result", mrid: "abc" });
  assert.equal(M.parseTopic("gridgate/v1", "gw", "gridgate/v1/gw/meas/KGM/F1/CB/SwitchPosition").path, "KGM/F1/CB/SwitchPosition");
  assert.equal(M.parseTopic("gridgate/v1", "gw", "gridgate/v1/other/status"), null);
});

test("a good value keeps value, source time, seq and flags", () => {
  const { reading } = M.parseValue(value({ quality: { validity: "QUESTIONABLE", source: "SUBSTITUTED", oldData: true } }));
  assert.equal(reading.mrid, "m1");
  assert.equal(reading.value, 182.4);
  assert.equal(reading.ts, Date.UTC(2026, 10, 22, 15, 49, 12, 345));
  assert.equal(reading.seq, 7);
  assert.deepEqual(reading.flags, ["oldData", "substituted"]);
  assert.equal(M.qualityClass(reading), "questionable");
});

test("malformed values name the problem instead of throwing", () => {
  assert.match(M.parseValue("{nope").error, /not JSON/);
  assert.match(M.parseValue("[1,2]").error, /not a JSON object/);
  assert.match(M.parseValue(JSON.stringify({ value: 1 })).error, /measurement.mRID/);
  const bad = M.parseValue(value({ value: "high" }));
  assert.equal(bad.mrid, "m1");
  assert.match(bad.error, /not a number/);
  assert.match(M.parseValue(value({ timeStamp: "yesterday" })).error, /ISO 8601/);
  assert.match(M.parseValue(value({ quality: { validity: "FINE" } })).error, /validity/);
  assert.equal(M.qualityClass({ error: "x" }), "bad");
  assert.equal(M.parseValue(new TextEncoder().encode(value())).reading.value, 182.4);
});

test("catalog and status parsing", () => {
  const cat = { mRID: "c1", name: "Ia", kind: "Analog", measurementType: "LineCurrent", unitSymbol: "A", unitMultiplier: "none", phases: "A",
    powerSystemResource: { mRID: "p", name: "FDR", type: "ACLineSegment", substation: "KGM", bay: "F1" } };
  const { entry: e } = M.parseCatalog(JSON.stringify(cat), "c1");
  assert.deepEqual([e.bay, e.equipment, e.equipmentType, e.unit, e.multiplier], ["F1", "FDR", "ACLineSegment", "A", ""]);
  assert.match(M.parseCatalog(JSON.stringify(cat), "c2").error, /differs/);
  assert.match(M.parseCatalog(JSON.stringify({ mRID: "c1" }), "c1").error, /powerSystemResource/);
  const { status } = M.parseStatus(JSON.stringify({ state: "online", commands: true, devices: { rtu: { connected: false, lastError: "timeout" } } }));
  assert.equal(status.devices.rtu.connected, false);
  assert.equal(status.commands, true);
  assert.match(M.parseStatus("{}").error, /state/);
  const ev = M.statusEvents({ state: "online", devices: { rtu: { connected: true } } }, status);
  assert.deepEqual(ev.map((x) => x.text), ["device rtu: comms lost (timeout)"]);
});

test("topology: bay roles and sections come from the CIM classes in the catalog", () => {
  const [sub] = M.buildTopology(kingsmead());
  assert.equal(sub.name, "KGM");
  assert.deepEqual(sub.transformers.map((b) => b.name), ["T1", "T2"]);
  assert.deepEqual(sub.incomers.map((b) => [b.name, b.section]), [["INC1", "BB1"], ["INC2", "BB2"]]);
  assert.deepEqual(sub.feeders.map((b) => b.section), ["BB1", "BB1", "BB1", "BB2", "BB2", "BB2"]);
  assert.deepEqual(sub.transformers.map((t) => t.incomer), ["INC1", "INC2"]);
  assert.equal(sub.busSection, "BS");
});

test("topology: a different site (one section, three feeders, no bus section) lays out too", () => {
  const es = [entry("GT", "TX", "PowerTransformer", "TapPosition"), entry("I1", "CB", "Breaker", "SwitchPosition"),
    ...["A", "B", "C"].map((f) => entry(`FD${f}`, "LN", "ACLineSegment", "LineCurrent"))];
  const [sub] = M.buildTopology(es);
  assert.deepEqual(sub.sections, ["BB"]);
  const lay = M.layout(sub);
  assert.equal(lay.cols.length, 4);
  const xs = lay.cols.map((c) => c.x);
  assert.deepEqual(xs, [...xs].sort((a, b) => a - b));
  assert.equal(new Set(xs).size, 4, "no two bays drawn on top of each other");
  assert.equal(lay.tcols[0].x, lay.cols[0].x, "transformer above its incomer");
  assert.equal(lay.busSectionX, null);
});

test("layout: sections side by side with the bus section between, feeders limited by bay filter", () => {
  const [sub] = M.buildTopology(kingsmead());
  const lay = M.layout(sub);
  assert.equal(lay.cols.length, 8);
  const [s1, s2] = lay.sections;
  assert.ok(s1.x1 < lay.busSectionX && lay.busSectionX < s2.x0);
  for (const c of lay.cols) {
    const s = lay.sections.find((x) => x.name === c.bay.section);
    assert.ok(s.x0 <= c.x && c.x <= s.x1, `${c.bay.name} within its section`);
  }
  assert.equal(M.layout(sub, new Set(["F2"])).cols.length, 3);
});

test("energisation follows breaker positions", () => {
  const [sub] = M.buildTopology(kingsmead());
  const pos = new Map();
  const posOf = (bay, eq) => pos.get(`${bay}/${eq}`) ?? "closed";
  let live = M.energise(sub, posOf);
  assert.ok(live.sections.has("BB1") && live.sections.has("BB2") && live.bays.has("F6"));
  pos.set("F2/CB", "open");
  live = M.energise(sub, posOf);
  assert.ok(!live.bays.has("F2") && live.bays.has("F1"));
  pos.set("INC1/CB", "open"); pos.set("BS/CB", "open");
  live = M.energise(sub, posOf);
  assert.ok(!live.sections.has("BB1") && live.sections.has("BB2") && !live.bays.has("F1") && live.bays.has("F4"));
  pos.set("BS/CB", "closed");
  assert.ok(M.energise(sub, posOf).bays.has("F1"), "bus section closed re-energises section 1");
  pos.set("T2/HVCB", "invalid"); pos.set("BS/CB", "closed");
  assert.equal(M.energise(sub, posOf).sections.size, 0, "an invalid position does not energise");
});

test("breaker state and primary position", () => {
  assert.equal(M.breakerState({ value: 2, validity: "GOOD", flags: [] }), "closed");
  assert.equal(M.breakerState({ value: 1, validity: "GOOD", flags: [] }), "open");
  assert.equal(M.breakerState({ value: 0, validity: "GOOD", flags: [] }), "intermediate");
  assert.equal(M.breakerState({ value: 3, validity: "GOOD", flags: [] }), "bad");
  assert.equal(M.breakerState({ value: 2, validity: "INVALID", flags: [] }), "invalid");
  assert.equal(M.breakerState(undefined), "unknown");
  const a = entry("INC1", "CB", "Breaker", "SwitchPosition", { name: "CBClosed" });
  const b = entry("INC1", "CB", "Breaker", "SwitchPosition", { name: "INC1_CB", phases: "ABC" });
  const cat = new Map([[a.mrid, a], [b.mrid, b]]);
  const eq = { name: "CB", points: [a.mrid, b.mrid] };
  assert.equal(M.primaryPosition(eq, cat, () => false).mrid, b.mrid);
  assert.equal(M.primaryPosition(eq, cat, (m) => m === a.mrid).mrid, a.mrid);
});

test("alarms: quality, breaker and protection events keep the published seq order; ack and bay filter", () => {
  const cb = entry("F1", "CB", "Breaker", "SwitchPosition");
  const ptoc = entry("F1", "CB", "Breaker", "ProtectionOperate", { name: "PTOC_Op" });
  const g = (value, seq, validity = "GOOD") => ({ value, seq, validity, flags: [], ts: 1 });
  const list = new M.AlarmList();
  for (const e of M.eventsFor(ptoc, g(0, 10), g(1, 12))) list.add(e);
  for (const e of M.eventsFor(cb, g(2, 9), g(1, 13))) list.add(e);
  for (const e of M.eventsFor(cb, g(1, 13), { ...g(1, 11, "INVALID"), flags: ["failure", "oldData"] })) list.add(e);
  list.add({ text: "x", bay: "F2" });
  const v = list.view("F1");
  assert.deepEqual(v.map((a) => a.seq), [13, 12, 11]);
  assert.match(v[0].text, /closed → open/);
  assert.match(v[1].text, /protection operate/);
  assert.match(v[2].text, /GOOD → INVALID \(failure, oldData\)/);
  assert.equal(list.view("").length, 4);
  const before = list.unacked();
  // a protection operate latches (its flag stays up after the relay resets) until acknowledged; a breaker change does not
  assert.equal(list.latched(ptoc.mrid), true);
  assert.equal(list.latched(cb.mrid), false);
  assert.ok(list.ack(v[1].id));
  assert.equal(list.unacked(), before - 1);
  assert.equal(list.latched(ptoc.mrid), false);
  // a protection start is an alarm too, but does not latch
  const start = entry("F1", "CB", "Breaker", "ProtectionStart", { name: "PTOC_Str" });
  for (const e of M.eventsFor(start, g(0, 14), g(1, 15))) list.add(e);
  assert.equal(list.latched(start.mrid), false);
  const bad = M.eventsFor(cb, g(1, 13), { error: "not JSON" });
  assert.equal(bad[0].severity, "bad");
  assert.match(bad[0].text, /bad payload — not JSON/);
});

test("alarm list stays bounded", () => {
  const list = new M.AlarmList(100);
  for (let i = 0; i < 1000; i++) list.add({ text: `e${i}`, seq: i, alarm: i % 2 === 0 });
  assert.equal(list.items.length, 100);
  assert.equal(list.view()[0].seq, 999);
});

test("trend store keeps the last N minutes", () => {
  const t = new M.TrendStore(1, 1000);
  for (let i = 0; i < 120; i++) t.push("a", i * 1000, i);
  const [xs, ys] = t.data("a");
  assert.equal(xs[0], 59);
  assert.equal(ys.at(-1), 119);
  t.push("a", 200000, "x");
  assert.equal(t.data("a")[1].length, 61);
});

test("command request is the documented shape; results show refusals with reason", () => {
  const r = M.commandRequest("hmi-1", 1, " control-engineer ", new Date(Date.UTC(2026, 0, 1)));
  assert.deepEqual(r, { id: "hmi-1", value: 1, operator: "control-engineer", issued: "2026-01-01T00:00:00.000Z" });
  assert.throws(() => M.commandRequest("x", 1, " "), /operator/);
  const { result } = M.parseResult(JSON.stringify({ id: "hmi-1", status: "rejected", reason: "operator_not_allowed", detail: "operator 'bob' ..." }));
  assert.equal(result.ok, false);
  assert.equal(result.reason, "operator_not_allowed");
  assert.equal(M.parseResult(JSON.stringify({ id: "a", status: "done" })).result.ok, true);
  assert.match(M.parseResult("nope").error, /not JSON/);
});

test("values are formatted with units", () => {
  const e = { kind: "Analog", unit: "W", multiplier: "k" };
  assert.equal(M.formatValue(e, { value: 1234.5, validity: "GOOD" }), "1235 kW");
  assert.equal(M.formatValue({ kind: "Discrete", unit: "none" }, { value: 2, alias: "closed" }), "closed");
  assert.equal(M.formatValue(e, { error: "x" }), "—");
  assert.equal(M.formatValue({ kind: "Discrete", type: "AvcState", unit: "none" }, { value: 5 }), "blocked");
  assert.equal(M.formatValue({ kind: "Discrete", type: "AvcState", unit: "none" }, { value: 1 }), "in band");
  assert.equal(M.ageText(75000), "1 min 15 s");
});

test("a breaker-only bay named or described as a feeder is a feeder; configured bays without points are drawn", () => {
  const es = [entry("T1", "TX", "PowerTransformer", "TapPosition"), entry("T1", "CB", "Breaker", "SwitchPosition"),
    entry("F1", "CB1", "Breaker", "SwitchPosition"), entry("F1", "CB2", "Breaker", "SwitchPosition"), entry("X9", "CB", "Breaker", "SwitchPosition")];
  const site = { substations: [{ name: "KGM", bays: [{ name: "X9", description: "11 kV feeder to the mill", equipment: [] },
    { name: "INC1", voltage_kv: 11, equipment: [{ name: "CB", type: "Breaker" }] }] }] };
  const [sub] = M.buildTopology(es, site);
  assert.deepEqual(sub.feeders.map((b) => b.name), ["F1", "X9"]);
  assert.deepEqual(sub.incomers.map((b) => [b.name, b.voltage]), [["INC1", 11]]);
  assert.deepEqual(sub.incomers[0].equipment.map((q) => q.points.length), [0]);
  assert.equal(sub.transformers[0].incomer, "INC1");
});

test("transformers without an incomer bay feed their busbar section directly", () => {
  const es = [entry("T1", "TX", "PowerTransformer", "TapPosition"), entry("T1", "CB", "Breaker", "SwitchPosition"),
    entry("T2", "TX", "PowerTransformer", "TapPosition"), entry("T2", "CB", "Breaker", "SwitchPosition"),
    entry("F1", "CB", "Breaker", "SwitchPosition"), entry("F2", "CB", "Breaker", "SwitchPosition")];
  const [sub] = M.buildTopology(es);
  assert.deepEqual(sub.incomers, []);
  assert.deepEqual(sub.transformers.map((t) => [t.incomer, t.section]), [[null, "BB"], [null, "BB"]]);
  const lay = M.layout(sub);
  const xs = [...lay.tcols.map((c) => c.x), ...lay.cols.map((c) => c.x)];
  assert.equal(new Set(xs).size, 4, "transformers and feeders in their own columns");
  assert.ok(lay.sections[0].x0 < Math.min(...xs) && Math.max(...xs) < lay.sections[0].x1);
  const pos = new Map([["T1/CB", "open"], ["T2/CB", "closed"], ["F1/CB", "closed"], ["F2/CB", "open"]]);
  const live = M.energise(sub, (b, q) => pos.get(`${b}/${q}`));
  assert.ok(live.sections.has("BB") && live.bays.has("F1") && !live.bays.has("F2") && !live.bays.has("T1"));
});

test("alarms without seq (comms, commands) sort right after the last published seq", () => {
  const list = new M.AlarmList();
  list.add({ text: "a", seq: 10 });
  list.add({ text: "comms lost" });
  list.add({ text: "late SOE", seq: 5 });
  list.add({ text: "b", seq: 11 });
  list.add({ text: "command done" });
  assert.deepEqual(list.view().map((x) => x.text), ["command done", "b", "comms lost", "a", "late SOE"]);
});

test("trend data for a chosen span", () => {
  const t = new M.TrendStore(60, 5000);
  for (let i = 0; i <= 600; i++) t.push("a", i * 1000, i); // 10 minutes, one sample a second
  assert.equal(t.data("a", 5)[0].length, 301);
  assert.equal(t.data("a", 5)[0][0], 300);
  assert.equal(t.data("a")[0].length, 601);
  assert.deepEqual(t.data("nothing", 5), [[], []]);
});
