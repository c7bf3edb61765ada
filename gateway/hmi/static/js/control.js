// Select-before-operate dialog: operator, intended state, select, then execute or cancel.
// The page publishes the documented request on .../cmd/{mRID} and shows the one result on
// .../cmd/{mRID}/result; the gateway applies the point's own mode (direct or SBO) to the device.
import * as M from "./model.js";

const SELECT_TIMEOUT_MS = 30000; // a selection not executed within this is cancelled
const RESULT_TIMEOUT_MS = 30000;

export class ControlDialog {
  /** deps: {publish(topic, body), cmdTopic(mrid), readingOf(mrid), controlState(), event(alarm)} */
  constructor(dialog, deps) {
    this.d = dialog; this.deps = deps; this.entry = null; this.pending = null; this.timer = null; this.n = 0;
    const q = (id) => dialog.querySelector(`#${id}`);
    this.q = q;
    q("sbo-select").addEventListener("click", () => this.select());
    q("sbo-execute").addEventListener("click", () => this.execute());
    q("sbo-cancel").addEventListener("click", () => this.cancel());
    dialog.addEventListener("cancel", () => this.cancel());
    try { q("sbo-operator").value = localStorage.getItem("gridgate-operator") ?? ""; } catch { /* storage may be off */ }
  }

  open(entry, policy) {
    this.entry = entry; this.policy = policy; this.selected = null;
    const q = this.q;
    const isPos = entry.type === "SwitchPosition";
    const r = this.deps.readingOf(entry.mrid);
    q("sbo-target").textContent = `${entry.bay}/${entry.equipment} ${entry.name}`;
    q("sbo-current").textContent = `now: ${r && !r.error ? (isPos ? M.POSITION[r.value] ?? r.value : r.value) : "unknown"} · mode ${policy.mode}` +
      (policy.operators?.length ? ` · operators: ${policy.operators.join(", ")}` : "");
    q("sbo-states").hidden = !isPos;
    q("sbo-setpoint-row").hidden = isPos;
    if (isPos) (r && r.value === M.CLOSED ? q("sbo-open") : q("sbo-close")).checked = true;
    else q("sbo-setpoint").value = r && !r.error && r.value !== null ? String(r.value) : "";
    this.phase("idle", "choose the intended state, then Select");
    q("sbo-result").textContent = ""; q("sbo-result").dataset.status = "";
    this.lock(false);
    if (!this.d.open) this.d.showModal();
  }

  phase(p, text) { const e = this.q("sbo-phase"); e.dataset.phase = p; e.textContent = text; }

  lock(selected) {
    const q = this.q;
    for (const id of ["sbo-operator", "sbo-open", "sbo-close", "sbo-setpoint"]) q(id).disabled = selected;
    q("sbo-select").disabled = selected;
    q("sbo-execute").disabled = !selected;
  }

  intended() {
    if (this.entry.type === "SwitchPosition") {
      const v = this.q("sbo-open").checked ? M.OPEN : this.q("sbo-close").checked ? M.CLOSED : null;
      return v;
    }
    const v = Number(this.q("sbo-setpoint").value);
    return this.q("sbo-setpoint").value.trim() === "" || !Number.isFinite(v) ? null : v;
  }

  select() {
    const operator = this.q("sbo-operator").value.trim();
    const value = this.intended();
    if (!operator) { this.phase("idle", "enter the operator name first"); return; }
    if (value === null) { this.phase("idle", "choose the intended state (or a numeric value)"); return; }
    const cs = this.deps.controlState();
    if (!cs.ok) { this.phase("idle", `control unavailable: ${cs.why}`); return; }
    try { localStorage.setItem("gridgate-operator", operator); } catch { /* storage may be off */ }
    this.selected = { operator, value };
    this.lock(true);
    const what = this.entry.type === "SwitchPosition" ? M.POSITION[value] : value;
    this.phase("selected", `selected: ${this.entry.bay}/${this.entry.equipment} → ${what} by ${operator}; Execute or Cancel within ${SELECT_TIMEOUT_MS / 1000} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { if (this.selected) { this.selected = null; this.lock(false); this.phase("idle", "selection timed out; select again"); } }, SELECT_TIMEOUT_MS);
  }

  execute() {
    if (!this.selected) return;
    clearTimeout(this.timer);
    const id = `hmi-${Date.now().toString(36)}-${(++this.n).toString(36)}`;
    let body;
    try { body = M.commandRequest(id, this.selected.value, this.selected.operator); } catch (e) { this.phase("idle", String(e.message || e)); return; }
    this.pending = { id, mrid: this.entry.mrid, entry: this.entry, value: this.selected.value, operator: this.selected.operator };
    this.selected = null;
    this.q("sbo-execute").disabled = true;
    this.phase("executing", `executing ${id}… waiting for the result`);
    this.deps.publish(this.deps.cmdTopic(this.entry.mrid), body);
    const pend = this.pending;
    this.timer = setTimeout(() => {
      if (this.pending === pend) { this.show({ status: "timeout", ok: false, reason: "no_result", detail: `no result within ${RESULT_TIMEOUT_MS / 1000} s` }); }
    }, RESULT_TIMEOUT_MS);
  }

  cancel() {
    clearTimeout(this.timer);
    this.selected = null;
    if (this.d.open) this.d.close();
    this.phase("idle", "");
  }

  onResult(mrid, payload) {
    const { result, error } = M.parseResult(payload);
    if (error) { this.deps.event({ text: `command result for ${mrid}: bad payload — ${error}`, severity: "bad" }); return; }
    if (!this.pending || this.pending.mrid !== mrid || result.id !== this.pending.id) return; // someone else's command
    this.show(result);
  }

  show(result) {
    const p = this.pending;
    this.pending = null;
    clearTimeout(this.timer);
    const what = p.entry.type === "SwitchPosition" ? M.POSITION[p.value] : p.value;
    const text = result.ok ? `done: ${p.entry.bay}/${p.entry.equipment} → ${what}` :
      `refused: ${result.status}${result.reason ? " — " + result.reason : ""}${result.detail ? " (" + result.detail + ")" : ""}`;
    const res = this.q("sbo-result");
    res.textContent = text; res.dataset.status = result.ok ? "done" : "refused";
    this.phase(result.ok ? "done" : "refused", result.ok ? "command executed; the diagram shows the new state when the gateway publishes it" : "command not executed");
    this.lock(false);
    this.deps.event({ text: `${p.entry.bay}/${p.entry.equipment}: command ${what} by ${p.operator} ${text}`, bay: p.entry.bay,
      severity: result.ok ? "event" : "alarm", alarm: !result.ok });
  }
}
