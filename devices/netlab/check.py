"""``gridgate lab check``: probe a running profile's zones and compare what connects with what the
profile allows, so the answer can be trusted both ways.

Why it cannot report a false breach or a false pass:

- every zone's listener answers with a per-run, per-zone token, and a connection counts as reach
  only when the *target* zone's token comes back (one that lands on another zone's listener, or on
  some other program, is "could not check", never "open");
- the probe aims at the target zone's own interface addresses (all of them), never at loopback: a
  zone with no interface (control in ``air-gapped``) is verified to have none and is unreachable by
  construction;
- a timeout counts as "closed" only when the timeout covers the emulated links on the way (delay,
  jitter, a lost SYN) and no link on the path has scheduled faults or is down; otherwise it is
  "could not check".
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Literal

from devices.netlab.lab import Lab, LabError
from devices.netlab.profile import Profile

Observed = Literal["open", "closed", "unknown"]
Verdict = Literal["ok", "breach", "missing", "unknown"]

#: raw probe outcomes that prove the flow did not get through (our filter, no route, dropped on the way)
_CLOSED = {"blocked", "unreachable", "timeout"}


@dataclass
class Cell:
    """One (source zone, target zone, port): what the profile allows, what the probe saw, and why."""

    expected: Literal["open", "closed"]
    observed: Observed
    detail: str  # the raw outcome per probed address, or why it could not be checked

    @property
    def verdict(self) -> Verdict:
        if self.observed == "unknown":
            return "unknown"
        if self.observed == self.expected:
            return "ok"
        return "breach" if self.observed == "open" else "missing"

    def as_dict(self) -> dict[str, str]:
        return {"expected": self.expected, "observed": self.observed, "verdict": self.verdict, "detail": self.detail}


@dataclass
class Report:
    profile: str
    ports: list[int]
    matrix: dict[str, dict[str, dict[int, Cell]]] = field(default_factory=dict)

    @property
    def verdict(self) -> Literal["pass", "breach", "missing", "could-not-check"]:
        verdicts = {c.verdict for row in self.matrix.values() for cells in row.values() for c in cells.values()}
        if "breach" in verdicts:
            return "breach"
        if "missing" in verdicts:
            return "missing"
        return "could-not-check" if "unknown" in verdicts else "pass"

    @property
    def exit_code(self) -> int:
        """0 the zones behave as the profile says, 1 a breach or an allowed flow that does not work, 3 could not tell."""
        return {"pass": 0, "breach": 1, "missing": 1, "could-not-check": 3}[self.verdict]

    def as_dict(self) -> dict:
        return {"profile": self.profile, "verdict": self.verdict, "ports": self.ports,
                "matrix": {s: {d: {str(p): c.as_dict() for p, c in cells.items()} for d, cells in row.items()}
                           for s, row in self.matrix.items()}}


def expected_open(profile: Profile, src: str, dst: str, port: int) -> bool:
    """Whether the profile lets ``src`` initiate a TCP connection to ``dst`` on ``port``."""
    return any(a.from_ == src and a.to == dst and a.proto == "tcp" and port in a.ports for a in profile.allow)


def default_ports(profile: Profile) -> list[int]:
    """Every TCP port the profile allows anywhere, plus 22 (a port no profile allows)."""
    return sorted({p for a in profile.allow if a.proto == "tcp" for p in a.ports} | {22})


def _timeout(lab: Lab, path: list[str]) -> tuple[float, str | None]:
    """Connect timeout for a path, and why a timeout on it proves nothing (a link with faults or down)."""
    extra, lossy = 0.0, False
    for r in lab.plan.routers:
        if r.zone not in path:
            continue
        e = r.emulate
        extra += 2 * (e.delay_ms + e.jitter_ms) / 1000
        lossy = lossy or e.loss_pct > 0
        if r.faults:
            return 0.0, f"link {r.link.name} has scheduled faults"
        try:
            down = lab.link(r.link.name).stats().get("link_down")
        except LabError:  # kernel netem path: no control socket, and no faults either (those need userspace)
            down = False
        if down:
            return 0.0, f"link {r.link.name} is down (partitioned)"
    # a lost SYN (or SYN/ACK) is retransmitted after 1 s, then 3 s: cover two losses on lossy links
    return (3.5 if lossy else 1.5) + 2 * extra, None


def _only_loopback(lab: Lab, zone: str) -> bool:
    """True when ``zone`` really has no IPv4 address but loopback (checked inside the zone)."""
    r = lab.run_in(zone, ["ip", "-j", "-4", "addr", "show"], timeout=15)
    if r.returncode:
        return False
    addrs = [a["local"] for i in json.loads(r.stdout or "[]") for a in i.get("addr_info", [])]
    return bool(addrs) and all(a.startswith("127.") for a in addrs)


def _combine(outcomes: dict[str, str], uncertain: str | None) -> tuple[Observed, str]:
    """One cell from the outcomes at each of the target's addresses: open anywhere is reach."""
    detail = ", ".join(f"{a}: {o}" for a, o in outcomes.items())
    if any(o == "open" for o in outcomes.values()):
        return "open", detail
    if all(o in _CLOSED for o in outcomes.values()):
        if uncertain and any(o == "timeout" for o in outcomes.values()):
            return "unknown", f"{detail} ({uncertain}: a timeout proves nothing)"
        return "closed", detail
    return "unknown", detail


def run_check(profile: Profile, ports: list[int]) -> Report:
    """Build the profile, listen on ``ports`` in every zone (each with its own token) and probe every pair."""
    report = Report(profile.name, ports)
    with Lab(profile) as lab:
        zones = lab.zones()
        tokens = {z: f"gridgate-probe {secrets.token_hex(8)} {z}" for z in zones}
        listeners = {z: lab.popen(z, [sys.executable, "-m", "devices.netlab.probe", "listen", *map(str, ports),
                                      "--banner", tokens[z]],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for z in zones}
        unbound: dict[str, set[int]] = {}
        for z, lp in listeners.items():
            ready = (lp.stdout.readline() if lp.stdout else "").split()
            unbound[z] = set(ports) if not ready or ready[0] != "ready" else \
                {int(x) for f in ready[1:] for x in f.removeprefix("failed=").split(",") if x}
        procs: dict[tuple[str, str], tuple[subprocess.Popen, str | None]] = {}
        fixed: dict[tuple[str, str], dict[int, Cell]] = {}
        for src in zones:
            for dst in zones:
                if src == dst:
                    continue
                exp = {p: "open" if expected_open(profile, src, dst, p) else "closed" for p in ports}
                addrs = lab.plan.addresses(dst)
                if not addrs:  # no interface at all: nothing can reach it, if that is really so
                    isolated = _only_loopback(lab, dst)
                    fixed[(src, dst)] = {p: Cell(exp[p], "closed" if isolated else "unknown",  # type: ignore[arg-type]
                                                 "isolated: the zone has no interface but loopback" if isolated else
                                                 "the zone has no planned address but its interfaces could not be verified")
                                         for p in ports}
                    continue
                timeout, uncertain = _timeout(lab, lab.plan.path(src, dst))
                argv = [sys.executable, "-m", "devices.netlab.probe", "connect",
                        *(f"{a}:{p}" for a in addrs for p in ports), "--timeout", str(timeout or 1.5),
                        "--expect", tokens[dst]]
                procs[(src, dst)] = (lab.popen(src, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                                     uncertain)
        for (src, dst), (proc, uncertain) in procs.items():
            try:
                out, err = proc.communicate(timeout=60)
                raw: dict[str, str] = json.loads(out) if proc.returncode == 0 else {}
            except (subprocess.TimeoutExpired, ValueError):
                raw, err = {}, "probe did not answer"
            cells: dict[int, Cell] = {}
            for p in ports:
                exp_p: Literal["open", "closed"] = "open" if expected_open(profile, src, dst, p) else "closed"
                per_addr = {k.rsplit(":", 1)[0]: v for k, v in raw.items() if k.rsplit(":", 1)[1] == str(p)}
                if p in unbound[dst]:
                    cells[p] = Cell(exp_p, "unknown", f"the probe listener in {dst} could not bind port {p}")
                elif not per_addr:
                    cells[p] = Cell(exp_p, "unknown", f"probe from {src} failed: {(err or '').strip()[-200:]}")
                else:
                    obs, detail = _combine(per_addr, uncertain)
                    cells[p] = Cell(exp_p, obs, detail)
            report.matrix.setdefault(src, {})[dst] = cells
        for (src, dst), cells in fixed.items():
            report.matrix.setdefault(src, {})[dst] = cells
        for lp in listeners.values():
            if lp.stdin:
                lp.stdin.close()
    return report
