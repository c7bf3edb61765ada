"""The run report: injected faults against what was published, as JSON and as one
self-contained HTML page (inline SVG, no scripts, no external assets).

Detection latency — from a fault's injection to the first published change on an affected
point (quality for comms faults; quality or value for data faults) — is the headline.
"""

from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from typing import Any

from devices.scenario.expect import Verdict
from devices.scenario.faults import DATA_KINDS
from devices.scenario.recorder import Sample


def _qword(q: dict) -> str:
    flags = sorted(k for k, v in q.items() if v is True)
    return q.get("validity", "?") + ("" if q.get("source", "PROCESS") == "PROCESS" else f"/{q.get('source')}") + (
        f" [{','.join(flags)}]" if flags else "")


def detection(fault: dict, samples: list[Sample], t0: float) -> dict[str, float | None]:
    """Per affected point: seconds from injection to the first published change."""
    ti = t0 + fault["injected_at"]
    end = t0 + fault["cleared_at"] if fault.get("cleared_at") is not None else float("inf")
    data = fault["kind"] in DATA_KINDS or fault["kind"] == "set_state"
    out: dict[str, float | None] = {}
    for key in fault["points"]:
        own = [s for s in samples if s.key == key]
        before = [s for s in own if s.at < ti]
        base = before[-1] if before else None
        hit = None
        for s in own:
            if s.at < ti or s.at > end + 5:
                continue
            if base is None or s.quality != base.quality or (data and s.value != base.value):
                hit = s.at - ti
                break
        out[key] = hit
    return out


def seq_gaps(samples: list[Sample]) -> list[dict]:
    seqs = sorted({s.seq for s in samples if isinstance(s.seq, int)})
    return [{"after": a, "next": b, "missing": b - a - 1} for a, b in zip(seqs, seqs[1:]) if b - a > 1]


def build(plan: Any, injections: list[dict], verdicts: list[Verdict], samples: list[Sample], t0: float,
          extra: dict | None = None) -> dict:
    faults = []
    for f in injections:
        det = detection(f, samples, t0)
        got = [v for v in det.values() if v is not None]
        faults.append({**f, "detection": det,
                       "detection_latency": min(got) if got else None,
                       "undetected": sorted(k for k, v in det.items() if v is None)})
    affected = sorted({k for f in injections for k in f["points"]})
    points = {}
    for key in affected:
        own = [s for s in samples if s.key == key]
        trans, prev = [], None
        for s in own:
            w = _qword(s.quality)
            if w != prev:
                trans.append({"t": round(s.at - t0, 3), "from": prev, "to": w, "seq": s.seq})
                prev = w
        points[key] = {
            "transitions": trans,
            "samples": [[round(s.at - t0, 3), s.value, _qword(s.quality), s.seq] for s in own],
        }
    lat = [f["detection_latency"] for f in faults if f["detection_latency"] is not None]
    return {
        "scenario": plan.scenario.name,
        "description": plan.scenario.description,
        "seed": plan.scenario.seed,
        "tick": plan.scenario.tick,
        "duration": plan.duration,
        "passed": all(v.passed for v in verdicts),
        "headline": {
            "detection_latency_max": max(lat) if lat else None,
            "detection_latency_median": statistics.median(lat) if lat else None,
            "faults": len(faults),
            "undetected_faults": sum(1 for f in faults if f["detection_latency"] is None),
        },
        "faults": faults,
        "expectations": [v.__dict__ for v in verdicts],
        "points": points,
        "seq_gaps": seq_gaps(samples),
        "published": len(samples),
        **(extra or {}),
    }


def write(report: dict, path: str | Path) -> None:
    p = Path(path)
    if p.suffix.lower() in (".html", ".htm"):
        p.write_text(to_html(report), encoding="utf-8")
    elif p.suffix.lower() == ".json":
        p.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    else:
        raise ValueError(f"--report {path}: give a .json or .html file name")


# ---------------------------------------------------------------- HTML


def _from_zero(rows: list) -> list:
    """Samples from scenario time 0; the value current at 0 (published during warm-up) starts the line."""
    before = [r for r in rows if r[0] < 0]
    return ([[0.0, *before[-1][1:]]] if before else []) + [r for r in rows if r[0] >= 0]


def _svg(key: str, pt: dict, faults: list[dict], duration: float) -> str:
    W, H, L, B = 720, 170, 48, 22
    span = max(duration, max((r[0] for r in pt["samples"]), default=0.0), 1e-6)
    rows = _from_zero([r for r in pt["samples"] if isinstance(r[1], (int, float))])
    vals = [float(r[1]) for r in rows] or [0.0]
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    x = lambda t: L + (W - L - 8) * t / span  # noqa: E731
    y = lambda v: 8 + (H - B - 8) * (1 - (v - lo) / (hi - lo))  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="{html.escape(key)}">',
             f'<rect x="{L}" y="8" width="{W - L - 8}" height="{H - B - 8}" fill="#fafafa" stroke="#ccc"/>']
    for f in faults:
        if key in f["points"]:
            a = f["injected_at"]
            b = f["cleared_at"] if f.get("cleared_at") is not None else span
            parts.append(f'<rect x="{x(a):.1f}" y="8" width="{max(1.0, x(b) - x(a)):.1f}" height="{H - B - 8}" '
                         f'fill="#f4c542" fill-opacity="0.25"><title>{html.escape(f["id"])}: {html.escape(f["kind"])}</title></rect>')
    if rows:  # a step line: a published value holds until the next one
        xy = []
        for n, r in enumerate(rows):
            if n:
                xy.append((r[0], float(rows[n - 1][1])))
            xy.append((r[0], float(r[1])))
        xy.append((span, float(rows[-1][1])))
        pts = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in xy)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#1f5fa8" stroke-width="1.5"/>')
    for r in _from_zero(pt["samples"]):
        if not str(r[2]).startswith("GOOD"):
            v = float(r[1]) if isinstance(r[1], (int, float)) else lo
            c = "#c0392b" if str(r[2]).startswith("INVALID") else "#e67e22"
            parts.append(f'<circle cx="{x(r[0]):.1f}" cy="{y(v):.1f}" r="3" fill="{c}"><title>{html.escape(str(r[2]))}</title></circle>')
    parts.append(f'<text x="4" y="14" font-size="10">{hi:.4g}</text><text x="4" y="{H - B}" font-size="10">{lo:.4g}</text>')
    parts.append(f'<text x="{L}" y="{H - 6}" font-size="10">0 s</text><text x="{W - 40}" y="{H - 6}" font-size="10">{span:.1f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(r: dict) -> str:
    e = html.escape
    ok = "PASS" if r["passed"] else "FAIL"
    head = r["headline"]
    fmt = lambda v: "—" if v is None else f"{v * 1000:.0f} ms"  # noqa: E731
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(r['scenario'])} — {ok}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}.PASS{color:#1e8449}.FAIL{color:#c0392b}</style>",
        "</head><body>",
        f"<h1>{e(r['scenario'])} <span class='{ok}'>{ok}</span></h1><p>{e(r['description'])}</p>",
        f"<p>seed {r['seed']}, tick {r['tick']} s, {r['duration']:.1f} s, {r['published']} values published, "
        f"{len(r['seq_gaps'])} seq gaps</p>",
        f"<h2>Detection latency: max {fmt(head['detection_latency_max'])}, median {fmt(head['detection_latency_median'])}</h2>",
        "<table><tr><th>fault</th><th>kind</th><th>target</th><th>injected</th><th>cleared</th><th>detected after</th><th>undetected points</th></tr>",
    ]
    for f in r["faults"]:
        cl = "—" if f.get("cleared_at") is None else f"{f['cleared_at']:.2f} s"
        out.append(f"<tr><td>{e(f['id'])}</td><td>{e(f['kind'])}</td><td>{e(f['target'])}</td><td>{f['injected_at']:.2f} s</td>"
                   f"<td>{cl}</td><td>{fmt(f['detection_latency'])}</td><td>{e(', '.join(f['undetected']))}</td></tr>")
    net = [f for f in r["faults"] if "network" in f]
    if net:  # network faults (scenario --profile): the MQTT side sees values stop and resume
        sec = lambda v: "—" if v is None else f"{v:.2f} s"  # noqa: E731
        out.append(f"</table><h2>Network faults (profile {e(str(r.get('profile', '?')))})</h2><table><tr><th>fault</th>"
                   "<th>kind</th><th>target</th><th>last value before</th><th>values during</th><th>gap</th>"
                   "<th>recovery after clear</th></tr>")
        for f in net:
            n = f["network"]
            out.append(f"<tr><td>{e(f['id'])}</td><td>{e(f['kind'])}</td><td>{e(f['target'])}</td>"
                       f"<td>{sec(n['last_value_before_s'])}</td><td>{n['values_during']}</td><td>{sec(n['gap_s'])}</td>"
                       f"<td>{sec(n['recovery_s'])}</td></tr>")
    out.append("</table><h2>Expectations</h2><table><tr><th></th><th>expectation</th><th>where</th><th>detail</th></tr>")
    for v in r["expectations"]:
        c = "PASS" if v["passed"] else "FAIL"
        out.append(f"<tr><td class='{c}'>{c}</td><td>{e(v['name'])}</td><td>{e(v['where'])}</td><td>{e(v['detail'])}</td></tr>")
    out.append("</table><h2>Points</h2>")
    for key, pt in r["points"].items():
        out.append(f"<h3>{e(key)}</h3>" + _svg(key, pt, r["faults"], r["duration"]))
        out.append("<p>" + " → ".join(f"{e(str(t['to']))} @{t['t']:.2f}s" for t in pt["transitions"]) + "</p>")
    out.append("</body></html>")
    return "\n".join(out)
