"""``gridgate scenario run FILE --profile NAME``: a scenario inside a network profile.

The lab owner (this process, host namespace) builds the profile (devices/netlab), places
the product as ``--profile`` does for demo/gateway (devices/netlab/run.py): devices in
``field`` (run by ``devices.scenario.zones field`` on the scenario clock), the gateway in
``gateway``, Mosquitto and the recorder (``zones record``) in ``control``. It holds the link
controls: network faults on the timeline (link_down/partition/link_up/latency on a named
emulated link) come to it as requests over the field process's pipe and are applied with
``lab.link(name)``. It never connects to a lab address itself; samples come back as a file.
The report is the scenario report plus ``profile``, ``links`` (counters) and, per network
fault, ``network`` (last value before, first value after, gap and recovery time).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import yaml

from devices.netlab.lab import Lab, LabError
from devices.netlab.profile import Profile
from devices.netlab.run import (
    PY,
    ProfileRunError,
    Session,
    open_field,
    place_devices,
    start_broker,
    start_gateway,
)
from devices.scenario.expect import judge
from devices.scenario.faults import NETWORK_KINDS
from devices.scenario.recorder import Sample
from devices.scenario.report import build
from devices.scenario.resolve import load_scenario
from devices.scenario.runner import RunResult

Progress = Callable[[str], None]
MARK = "@@ "


def emulated_links(profile: Profile) -> frozenset[str]:
    return frozenset(l.name for l in profile.links if l.emulate is not None)


class Pipe:
    """``@@ {json}`` lines of one zone process, read by a thread (the other lines go to its log)."""

    def __init__(self, p: subprocess.Popen, name: str, log: Path) -> None:
        self.p, self.name, self.q = p, name, queue.Queue()
        self.log = log.open("w")
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for raw in self.p.stdout:
            line = raw.decode(errors="replace")
            if line.startswith(MARK):
                self.q.put(json.loads(line[len(MARK):]))
            else:
                self.log.write(line)
                self.log.flush()
        self.q.put(None)  # EOF

    def get(self, timeout: float, what: str, session: Session) -> dict:
        try:
            m = self.q.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            raise ProfileRunError(f"{self.name}: no {what} within {timeout:.0f} s:\n{session.log(self.name)}") from None
        if m is None:
            self.p.wait(5)
            raise ProfileRunError(f"{self.name} exited ({self.p.returncode}) before {what}:\n{session.log(self.name)}")
        return m

    def send(self, obj: dict) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(json.dumps(obj).encode() + b"\n")
        self.p.stdin.flush()


class LinkFaults:
    """Network faults → the lab's link controls; latency restores the impairment it replaced."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.saved: dict[str, list[dict]] = {}

    def apply(self, action: str, link: str, fault: dict) -> dict:
        ctl, kind = self.lab.link(link), fault["kind"]
        if kind in ("link_down", "partition"):
            return ctl.partition() if action == "inject" else ctl.heal()
        if kind == "link_up":
            return ctl.heal() if action == "inject" else ctl.stats()
        if action == "inject":
            self.saved.setdefault(link, []).append(ctl.stats()["impairment"])
            kw: dict[str, Any] = {"delay_ms": fault["ms"], "jitter_ms": fault.get("jitter_ms")}
            if fault.get("loss") is not None:
                kw["loss_pct"] = fault["loss"] * 100
            if fault.get("rate_kbit") is not None:
                kw["rate_up_kbit"] = kw["rate_down_kbit"] = fault["rate_kbit"]
            if kw["jitter_ms"] is None:  # keep the profile's jitter, never more than the new delay
                kw["jitter_ms"] = min(self.saved[link][-1]["jitter_ms"], fault["ms"])
            return ctl.set(**kw)
        return ctl.set(**self.saved[link].pop())


def network_effect(fault: dict, samples: list[Sample], t0: float) -> dict:
    """What the MQTT side saw of a network fault: values stop (gap) and resume (recovery)."""
    ti = t0 + fault["injected_at"]
    tc = t0 + fault["cleared_at"] if fault.get("cleared_at") is not None else None
    before = [s.at for s in samples if s.at < ti]
    after = [s.at for s in samples if tc is not None and s.at >= tc]
    during = [s.at for s in samples if s.at >= ti and (tc is None or s.at < tc)]
    last = max(before, default=None)
    first = min(after, default=None)
    if fault["kind"] in ("latency", "link_up"):  # values keep flowing: no gap to speak of
        last = first = None
    span = (tc if tc is not None else float("inf"))
    samples = _live(samples)
    return {
        "value_age_ms": {"before": _age([x for x in samples if ti - 5 <= x.at < ti]),
                         "during": _age([x for x in samples if ti + 0.5 <= x.at < span]),
                         "after": _age([x for x in samples if tc is not None and tc + 1 <= x.at < tc + 6])},
        "last_value_before_s": None if last is None else round(last - ti, 3),
        "values_during": len(during),
        "first_value_after_clear_s": None if first is None or tc is None else round(first - tc, 3),
        "gap_s": None if last is None or first is None else round(first - last, 3),
        "recovery_s": None if first is None or tc is None else round(first - tc, 3),
    }


def _live(samples: list[Sample]) -> list[Sample]:
    """The samples whose age measures the path: neither the broker's retained copies (their age is how
    long they were stored; the recorder subscribes before the gateway starts) nor each point's first
    value, the initial image of the gateway's start-up (its age is the start-up time plus how long the
    device held the value: 250-860 ms against a 35 ms link, enough to move the median of a window)."""
    seen: set[str] = set()
    live = []
    for x in sorted(samples, key=lambda x: x.at):
        if x.key not in seen:
            seen.add(x.key)
            continue
        if not x.retained:
            live.append(x)
    return live


def _age(samples: list[Sample]) -> float | None:
    """Median of arrival − source timestamp (ms): the value age the control centre sees on live values."""
    ages = []
    for x in samples:
        try:
            ages.append(x.at - datetime.fromisoformat(x.timestamp.replace("Z", "+00:00")).timestamp())
        except (ValueError, AttributeError):
            continue
    return round(statistics.median(ages) * 1000, 1) if ages else None


def run_in_profile(file: str, config: str | None, profile: Profile, warmup: float = 10.0,
                   say: Progress | None = None, keep: Path | None = None) -> RunResult:
    """Build the lab, run the scenario in it, tear it down; the result as :func:`run_plan`'s."""
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    if profile.gateway.northbound != "mqtt":
        raise ProfileRunError(f"profile {profile.name}: the scenario recorder reads MQTT in the control zone; "
                              f"northbound {profile.gateway.northbound} is not supported by scenario runs yet "
                              "(use a profile with northbound: mqtt)")
    links = emulated_links(profile)
    plan0 = load_scenario(file, config, links)  # validates names (and link names) before any lab exists
    work = keep or Path(tempfile.mkdtemp(prefix=f"gg-scenario-{profile.name}-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(file, plan0, links, profile, work, warmup, say)
    finally:
        if keep is None and not os.environ.get("GRIDGATE_KEEP_LAB_FILES"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"lab files kept in {work}")


def _run(file: str, plan0: Any, links: frozenset[str], profile: Profile, work: Path, warmup: float,
         say: Progress) -> RunResult:
    with Lab(profile) as lab:
        data, endpoints = place_devices(lab, plan0.cfg)
        site = work / "site.yaml"
        site.write_text(yaml.safe_dump(data, sort_keys=False))
        plan = load_scenario(file, site, links)
        s = Session(lab, work, site, endpoints)
        open_field(lab, endpoints)
        start_broker(s)
        s.broker_url = f"mqtt://{lab.address('control', towards='gateway')}:{profile.broker_port}"
        cfg = plan.cfg
        topic = f"{cfg.gateway.northbound.topic_prefix}/{cfg.gateway.id}/#"
        rec = Pipe(s.start("recorder", "control", [PY, "-m", "devices.scenario.zones", "record", "--broker",
                                                  f"mqtt://127.0.0.1:{profile.broker_port}", "--topic", topic,
                                                  "--config", str(site), "--out", str(work / "samples.json")],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE), "recorder", work / "recorder.out")
        rec.get(15, "subscription", s)
        fld = Pipe(s.start("field", "field", [PY, "-m", "devices.scenario.zones", "field", "--scenario", str(file),
                                              "--config", str(site), "--links", ",".join(sorted(links)),
                                              "--out", str(work / "field.json")],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE), "field", work / "field.out")
        ready = fld.get(30, "devices listening", s)
        start_gateway(s)
        try:
            rec.get(warmup, "value for every point", s)
        except ProfileRunError as e:
            say(f"warm-up: {str(e).splitlines()[0]}; starting anyway")
        fld.send({"go": True})
        started = fld.get(10, "clock start", s)
        say(f"scenario {plan.scenario.name!r} in profile {profile.name}: seed {plan.scenario.seed}, "
            f"{started['events']} events over {started['duration']:g}s")
        for w in plan.warnings:
            say(f"WARNING {w}")
        nf = LinkFaults(lab)
        deadline = time.monotonic() + plan.duration + 60
        while True:
            m = fld.get(deadline - time.monotonic(), "end of the scenario", s)
            if "done" in m:
                break
            if "link" in m:
                rq = m["link"]
                try:
                    nf.apply(rq["action"], rq["link"], rq["fault"])
                    fld.send({"id": rq["id"], "ok": True})
                except (LabError, KeyError, OSError) as e:
                    fld.send({"id": rq["id"], "error": f"link {rq['link']}: {e}"})
        link_stats = {n: lab.link(n).stats() for n in sorted(links)}
        s.stop("gateway", timeout=15)
        time.sleep(0.3)
        assert rec.p.stdin is not None
        rec.p.stdin.close()
        rec.get(15, "recording saved", s)
        s.stop("field")
        s.stop("mosquitto")
    field_res = json.loads((work / "field.json").read_text())
    rec_res = json.loads((work / "samples.json").read_text())
    samples = [Sample(**d) for d in rec_res["samples"]]
    t0 = field_res["t0"]
    verdicts = [judge(where, anchor, ex, samples, t0, plan.site.point) for where, anchor, ex in plan.expectations]
    errors = list(field_res["errors"]) + [f"device {d} not emulated: {why}" for d, why in ready.get("skipped", {}).items()]
    injections = field_res["injections"]
    extra = {"errors": errors, "profile": profile.name, "links": link_stats,
             "recorder": {"samples": len(samples), "undecodable": rec_res["undecodable"],
                          "unknown_measurements": rec_res["unknown"]},
             "status": [{"at": round(at - t0, 3), "state": b.get("state"), "stats": b.get("stats")}
                        for at, b in rec_res["status"] if isinstance(b, dict)],
             "log": [{**e, "at": round(e["at"] - t0, 4)} for e in field_res["log"]]}
    report = build(plan, injections, verdicts, samples, t0, extra)
    for f in report["faults"]:
        if f["kind"] in NETWORK_KINDS:  # the sign of a WAN fault on the MQTT side is values stopping, not a quality
            f["network"] = network_effect(f, samples, t0)
            f["detection"], f["undetected"] = {}, []
    report["headline"]["undetected_faults"] = sum(
        1 for f in report["faults"] if f["detection_latency"] is None and f["kind"] not in NETWORK_KINDS)
    report["headline"]["network_faults"] = [{"id": f["id"], "kind": f["kind"], "target": f["target"], **f["network"]}
                                            for f in report["faults"] if "network" in f]
    report["passed"] = report["passed"] and not errors
    return RunResult(report, verdicts, errors)
