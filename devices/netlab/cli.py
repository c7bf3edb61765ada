"""``gridgate lab check PROFILE``: the reachability matrix of a network profile (a `gridgate.commands` plugin)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    lab = sub.add_parser("lab", help="network profiles: inspect and check them")
    lsub = lab.add_subparsers(dest="lab_cmd", metavar="ACTION", required=True)
    chk = lsub.add_parser("check", help="build PROFILE, probe which zone can open which port on which other zone, compare with the "
                         "profile; exit 0 pass, 1 breach or allowed flow not working, 3 could not check")
    chk.add_argument("profile", help="profile name (configs/profiles/NAME.yaml) or path")
    chk.add_argument("--ports", default=None, help="comma-separated ports to probe (default: the profile's allowed ports + 22)")
    chk.add_argument("--json", action="store_true", help="the report as JSON: profile, verdict, ports, "
                     "matrix[src][dst][port] = {expected, observed, verdict, detail}")
    return {"lab": cmd_lab}


def cmd_lab(args: argparse.Namespace) -> int:
    from devices.netlab import LabUnavailable, ProfileError, load_profile
    from devices.netlab.check import default_ports, run_check
    from devices.netlab.lab import LabError

    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        ports = [int(p) for p in args.ports.split(",")] if args.ports else default_ports(profile)
        if not ports or not all(0 < p < 65536 for p in ports):
            raise ValueError
    except ValueError:
        print(f"error: --ports {args.ports!r}: expected comma-separated port numbers, e.g. --ports 502,1883,22",
              file=sys.stderr)
        return 2
    if profile.flat:
        if args.json:
            print(json.dumps({"profile": profile.name, "verdict": "pass", "ports": ports, "matrix": {}}, indent=2))
        else:
            print(f"profile {profile.name} is flat: everything on loopback, no zones to keep apart, nothing to check")
        return 0
    try:
        report = run_check(profile, ports)
    except (LabUnavailable, LabError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return report.exit_code
    print(f"profile {profile.name}: who can open a TCP connection to whom, against what the profile allows")
    for src, row in report.matrix.items():
        for dst, cells in row.items():
            opened = [str(p) for p, c in cells.items() if c.observed == "open"]
            bad = [f"{p} {c.verdict}: {c.detail}" for p, c in cells.items() if c.verdict != "ok"]
            print(f"  {src:>10} → {dst:<10} {'open: ' + ', '.join(opened) if opened else 'nothing'}")
            for b in bad:
                print(f"  {'':>10}   {'':<10} ! port {b}")
    print({"pass": "PASS: every zone pair behaves as the profile allows",
           "breach": "BREACH: a flow the profile does not allow got through",
           "missing": "FAIL: a flow the profile allows does not get through",
           "could-not-check": "COULD NOT CHECK: some flows could not be told apart (see ! lines); neither pass nor breach",
           }[report.verdict])
    return report.exit_code
