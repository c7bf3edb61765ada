// A Sparkplug host's view of a gridgate run, decoded with Eclipse Tahu's JavaScript payload library
// (sparkplug-payload, vendored in ./node_modules at the versions in VENDORED.md). Run by
// tests/northbound/test_sparkplug_tahu.py, which records the run and names it in GRIDGATE_SPB_RUN.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const sparkplug = require("sparkplug-payload").get("spBv1.0");
const { Payload } = require("sparkplug-payload/lib/sparkplugPayloadProto").org.eclipse.tahu.protobuf;

const path = process.env.GRIDGATE_SPB_RUN;
assert.ok(path, "GRIDGATE_SPB_RUN names the recorded run (run this through test_sparkplug_tahu.py)");
const run = JSON.parse(readFileSync(path, "utf8"));
const TYPES = { 3: "Int32", 4: "Int64", 10: "Double", 11: "Boolean", 12: "String" };
const num = (v) => (v !== null && typeof v === "object" && "low" in v ? Number(v.toString()) : v);
const kind = (topic) => topic.split("/")[2];

// decode every message as a host does: DATA and CMD metrics carry only an alias, the datatype is the birth's
const births = new Map(); // alias → datatype number (per edge node: one here)
const decoded = run.messages.map(({ topic, payload, expect }) => {
  const buf = Buffer.from(payload, "base64");
  let bytes = buf;
  if (["DBIRTH", "NBIRTH"].includes(kind(topic))) {
    for (const m of Payload.decode(buf).metrics) if (m.alias != null) births.set(num(m.alias), m.datatype);
  } else if (["DDATA", "DCMD", "NCMD"].includes(kind(topic))) {
    const raw = Payload.decode(buf);
    for (const m of raw.metrics) if (!m.datatype && m.alias != null) m.datatype = births.get(num(m.alias));
    bytes = Payload.encode(raw).finish();
  }
  return { topic, kind: kind(topic), msg: sparkplug.decodePayload(bytes), expect };
});

test("every message type of the run is present", () => {
  const kinds = new Set(decoded.map((d) => d.kind));
  for (const k of ["NBIRTH", "DBIRTH", "DDATA", "NDEATH", "NCMD", "DCMD"]) assert.ok(kinds.has(k), `no ${k}`);
  assert.ok(decoded.some((d) => d.kind === "DDATA" && d.msg.metrics.some((m) => m.isHistorical)), "no historical DDATA");
});

test("Tahu decodes each message to what gridgate meant", () => {
  for (const { topic, msg, expect } of decoded) {
    assert.equal(num(msg.timestamp), expect.timestamp, topic);
    if ("seq" in expect) assert.equal(num(msg.seq), expect.seq, topic);
    assert.equal(msg.metrics.length, expect.metrics.length, topic);
    msg.metrics.forEach((m, i) => {
      const e = expect.metrics[i];
      if ("name" in e) assert.equal(m.name, e.name, topic);
      if ("alias" in e) assert.equal(num(m.alias), e.alias, topic);
      if ("timestamp" in e) assert.equal(num(m.timestamp), e.timestamp, topic);
      if ("datatype" in e) assert.equal(m.type, TYPES[e.datatype], topic);
      assert.equal(Boolean(m.isHistorical), Boolean(e.is_historical), topic);
      if (e.is_null) assert.equal(m.value, null, topic);
      else if ("value" in e) assert.equal(num(m.value), e.value, `${topic} ${e.name ?? e.alias}`);
      for (const [k, p] of Object.entries(e.properties ?? {})) assert.equal(num(m.properties[k].value), p.value, `${topic} ${k}`);
    });
  }
});

test("births: every metric has a name, a JavaScript-safe alias, a datatype and a quality", () => {
  const aliases = new Set();
  for (const { kind, msg, topic } of decoded.filter((d) => d.kind === "DBIRTH")) {
    for (const m of msg.metrics) {
      assert.ok(m.name && m.type, topic);
      const a = num(m.alias);
      assert.ok(Number.isSafeInteger(a) && a > 0 && a < 100000, `${topic} ${m.name} alias ${a}`);
      aliases.add(a);
      assert.ok([0, 192, 500].includes(m.properties.Quality.value), topic);
      if (!m.name.endsWith("/CommandResult")) {
        assert.equal(typeof m.properties.mRID.value, "string");
        assert.notEqual(m.value, null, `${topic} ${m.name}: births carry values`);
      }
    }
  }
  assert.ok(aliases.size > 100);
});

test("bdSeq: NBIRTH, rebirth and NDEATH of the session agree", () => {
  const bd = (k) => decoded.filter((d) => d.kind === k).map((d) => num(d.msg.metrics.find((m) => m.name === "bdSeq").value));
  const nbirths = bd("NBIRTH");
  assert.equal(nbirths.length, 2);
  assert.deepEqual(bd("NDEATH"), [nbirths[0]]);
  assert.equal(nbirths[1], nbirths[0]); // a rebirth keeps the session's bdSeq
});

test("seq: 0 at each NBIRTH, then +1 mod 256 without a break", () => {
  let expected = null;
  for (const { kind, msg, topic } of decoded) {
    if (!["NBIRTH", "DBIRTH", "DDATA"].includes(kind)) continue;
    const s = num(msg.seq);
    if (kind === "NBIRTH") assert.equal(s, 0, topic);
    else assert.equal(s, expected, topic);
    expected = (s + 1) % 256;
  }
});

test("DDATA values equal the CIM values of the same reading (same millisecond; CIM rounds to 6 decimals)", () => {
  const mrid = new Map(); // alias → CIM measurement mRID, from the births' properties
  for (const { kind, msg } of decoded) if (kind === "DBIRTH") for (const m of msg.metrics) mrid.set(num(m.alias), m.properties.mRID.value);
  const cim = new Map(run.cim.map((c) => [`${c.mRID}|${c.timestamp}`, c.value]));
  let compared = 0;
  for (const { kind, msg, topic } of decoded) {
    if (kind !== "DDATA") continue;
    for (const m of msg.metrics) {
      if (m.type === "String") continue; // a command result
      const key = `${mrid.get(num(m.alias))}|${num(m.timestamp)}`;
      assert.ok(cim.has(key), `${topic}: ${key} has no CIM value with the same mRID and timestamp`);
      const v = num(m.value), c = cim.get(key); // CIM JSON carries analogs to 6 decimals
      assert.ok(Math.abs(v - c) <= 5e-7 * Math.max(1, Math.abs(v)), `${topic}: ${key} Sparkplug ${v} vs CIM ${c}`);
      compared++;
    }
  }
  assert.ok(compared > 50, `only ${compared} DDATA metrics compared`);
});
