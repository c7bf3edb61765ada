"""``gridgate lab check PROFILE``: the reachability matrix of a network profile (a `gridgate.commands` plugin)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    lab = sub.add_parser("lab", help="network profiles: inspect and check them")
    lsub = lab.add_subparsers(dest="lab_cmd", metavar="ACTION", required=True)
    chk = lsub.add_parser("check", help="build PROFILE and print which zone can open which port on which other zone")
    chk.add_argument("profile", help="profile name (configs/profiles/NAME.yaml) or path")
    chk.add_argument("--ports", default=None, help="comma-separated ports to probe (default: the profile's allowed ports + 22)")
    chk.add_argument("--json", action="store_true")
    return {"lab": cmd_lab}


def cmd_lab(args: argparse.Namespace) -> int:
    import subprocess

    from devices.netlab import Lab, LabUnavailable, ProfileError, load_profile

    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if profile.flat:
        print(f"profile {profile.name} is flat: everything on loopback, nothing to check")
        return 0
    ports = [int(p) for p in args.ports.split(",")] if args.ports else sorted({p for a in profile.allow for p in a.ports} | {22})
    zones = list(profile.zones)
    matrix: dict[str, dict[str, dict[str, str]]] = {}
    try:
        with Lab(profile) as lab:
            listeners = [lab.popen(z, [sys.executable, "-m", "devices.netlab.probe", "listen", *map(str, ports)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for z in zones]
            for p in listeners:
                p.stdout.readline()  # "ready"
            procs = {}
            for src in zones:
                for dst in zones:
                    if src != dst:
                        addr = lab.address(dst, towards=src)
                        procs[(src, dst)] = lab.popen(src, [sys.executable, "-m", "devices.netlab.probe", "connect",
                                                            *(f"{addr}:{p}" for p in ports), "--timeout", "0.5"],
                                                      stdout=subprocess.PIPE, text=True)
            for (src, dst), p in procs.items():
                out, _ = p.communicate(timeout=30)
                matrix.setdefault(src, {})[dst] = {k.rsplit(":", 1)[1]: v for k, v in json.loads(out).items()}
            for p in listeners:
                p.stdin.close()
    except LabUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(matrix, indent=2))
        return 0
    print(f"profile {profile.name}: who can open a TCP connection to whom (open = allowed)")
    for src, row in matrix.items():
        for dst, res in row.items():
            opened = [p for p, v in res.items() if v == "open"]
            print(f"  {src:>10} → {dst:<10} {'open: ' + ', '.join(opened) if opened else 'nothing'}")
    return 0
