// Alarm list (virtualised), tooltip, trend dialog: DOM views over the model's state.
import * as M from "./model.js";

const ROW = 24;

export function utcTime(ms) {
  if (!Number.isFinite(ms)) return "—";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 23);
}

/** Virtualised alarm list: only the rows in view exist in the DOM, so 100k events stay smooth. */
export class AlarmView {
  constructor(box, alarms, onChange) {
    this.box = box; this.inner = box.firstElementChild; this.alarms = alarms; this.onChange = onChange;
    this.bay = ""; this.onlyAlarms = false; this.rows = [];
    box.addEventListener("scroll", () => this.draw());
    this.inner.addEventListener("click", (ev) => {
      const id = Number(ev.target?.dataset?.ack);
      if (id && this.alarms.ack(id)) { this.render(); this.onChange(); }
    });
  }

  visible() {
    const xs = this.alarms.view(this.bay);
    return this.onlyAlarms ? xs.filter((a) => a.alarm) : xs;
  }

  /** Re-sort only when the list or the filter changed; scrolling just redraws the rows in view. */
  render(force = false) {
    const key = `${this.alarms.version}|${this.bay}|${this.onlyAlarms}`;
    if (force || key !== this.key) { this.rows = this.visible(); this.key = key; }
    this.draw();
  }

  draw() {
    this.inner.style.height = `${this.rows.length * ROW}px`;
    const first = Math.max(0, Math.floor(this.box.scrollTop / ROW) - 5);
    const last = Math.min(this.rows.length, first + Math.ceil(Math.min(this.box.clientHeight || 600, 4000) / ROW) + 10);
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const a = this.rows[i];
      const row = document.createElement("div");
      row.className = `alarm sev-${a.severity ?? "event"}${a.acked ? " acked" : ""}${a.alarm ? " is-alarm" : ""}`;
      row.style.top = `${i * ROW}px`;
      row.dataset.bay = a.bay || "";
      const cells = [utcTime(a.ts).slice(11), a.seq ?? "", a.bay || "", a.text];
      for (const c of cells) { const s = document.createElement("span"); s.textContent = String(c); row.appendChild(s); }
      row.firstChild.title = `${utcTime(a.ts)} UTC`;
      row.lastChild.title = a.text;
      const b = document.createElement("button");
      b.type = "button"; b.dataset.ack = String(a.id); b.textContent = a.acked ? "✓" : "ack"; b.disabled = a.acked || !a.alarm;
      row.appendChild(b);
      frag.appendChild(row);
    }
    this.inner.replaceChildren(frag);
  }
}

/** One shared tooltip: quality flags, source time and age of the value under the pointer. */
export class Tooltip {
  constructor(box, describe) { this.box = box; this.describe = describe; this.current = null; }

  attach(target, mridOf) {
    target.addEventListener("mouseenter", (ev) => { this.current = { mrid: mridOf(), x: ev.clientX, y: ev.clientY }; this.show(); });
    target.addEventListener("mousemove", (ev) => { if (this.current) { this.current.x = ev.clientX; this.current.y = ev.clientY; this.place(); } });
    target.addEventListener("mouseleave", () => { this.current = null; this.box.hidden = true; });
  }

  show() {
    if (!this.current) return;
    this.box.replaceChildren(...this.describe(this.current.mrid).map((line) => { const d = document.createElement("div"); d.textContent = line; return d; }));
    this.box.hidden = false;
    this.place();
  }

  place() {
    const { x, y } = this.current;
    this.box.style.left = `${Math.min(x + 14, window.innerWidth - this.box.offsetWidth - 8)}px`;
    this.box.style.top = `${Math.min(y + 14, window.innerHeight - this.box.offsetHeight - 8)}px`;
  }
}

/** Trend of one analogue over the last minutes the page has seen (uPlot, vendored). */
export class TrendView {
  constructor(dialog, trends) {
    this.dialog = dialog; this.trends = trends; this.plot = null; this.entry = null; this.timer = null;
    dialog.querySelector("#trend-close").addEventListener("click", () => this.close());
    dialog.addEventListener("close", () => this.close());
    dialog.querySelector("#trend-span").addEventListener("change", () => this.refresh());
  }

  open(entry) {
    this.close();
    this.entry = entry;
    const unit = `${entry.multiplier}${entry.unit === "none" ? "" : entry.unit}`;
    this.dialog.querySelector("#trend-title").textContent = `${entry.bay}/${entry.equipment} ${entry.name} (${unit || "—"})`;
    this.dialog.showModal();
    const box = this.dialog.querySelector("#trend-plot");
    box.replaceChildren();
    const width = Math.max(320, Math.min(900, window.innerWidth - 80));
    this.plot = new uPlot({ width, height: 300, scales: { x: { time: true } },
      series: [{}, { label: entry.name, stroke: "#2471a3", width: 1.5 }], axes: [{}, { label: unit }] }, [[], []], box);
    this.refresh();
    this.timer = setInterval(() => this.refresh(), 1000);
  }

  refresh() {
    if (!this.plot || !this.entry) return;
    const minutes = Number(this.dialog.querySelector("#trend-span").value);
    const d = this.trends.data(this.entry.mrid, minutes);
    this.plot.setData(d);
    this.dialog.querySelector("#trend-hint").textContent = `${d[0].length} samples in the last ${minutes} min (values this page has received since it opened)`;
    this.dialog.dataset.samples = String(d[0].length);
  }

  close() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    this.entry = null;
    if (this.dialog.open) this.dialog.close();
  }
}

export { M };
