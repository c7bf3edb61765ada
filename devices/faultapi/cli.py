"""``gridgate fault inject|clear|list``: the live fault API's command-line client."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable


def register(sub) -> dict[str, Callable[[argparse.Namespace], int]]:
    f = sub.add_parser("fault", help="inject, clear or list faults in a running emulator (live API)")
    fs = f.add_subparsers(dest="fault_cmd", metavar="ACTION", required=True)
    fs.add_parser("instances", help="the running emulators this user can address (their --name)")
    for name in ("inject", "clear", "list"):
        p = fs.add_parser(name)
        p.add_argument("--name", help="the emulator to address (see `gridgate fault instances`; needed when several run)")
        p.add_argument("--url", help="fault API URL (default: from the emulator's state file)")
        p.add_argument("--token", help="fault API token (default: from the emulator's state file)")
        p.add_argument("--state", help="state file written by the emulator")
        if name == "inject":
            p.add_argument("--device")
            p.add_argument("--point", help="device/point or mRID")
            p.add_argument("--bay", help="substation/bay")
            p.add_argument("--kind", required=True, help="fault kind: silent, delay, stuck, ...")
            p.add_argument("--ms", type=float, help="delay in ms (kind delay)")
            p.add_argument("--jitter-ms", type=float)
            p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                           help="further fault parameters, VALUE as JSON or text (value=0, code=4)")
            p.add_argument("--for", dest="duration", help="auto-clear after (30s, 5m)")
            p.add_argument("--id")
        if name == "clear":
            p.add_argument("id", nargs="?", help="fault id (default: all)")
    return {"fault": _fault}


def _fault(a: argparse.Namespace) -> int:
    from devices.faultapi.client import FaultApiChoice, FaultApiError, FaultClient
    from devices.faultapi.state import StateFileError, running_instances

    if a.fault_cmd == "instances":
        try:
            running = running_instances()
        except StateFileError as e:
            print(f"gridgate fault: {e}", file=sys.stderr)
            return 1
        for st in running:
            print(f"{st['name']}\tpid {st.get('pid')}\t{st['url']}\t{st.get('config') or ''}")
        if not running:
            print("no running emulator", file=sys.stderr)
        return 0
    try:
        c = FaultClient(a.url, a.token, a.state, a.name)
        print(f"gridgate fault: emulator {c.addressing}", file=sys.stderr)
        if a.fault_cmd == "list":
            print(json.dumps(c.list(), indent=1))
        elif a.fault_cmd == "clear":
            print(json.dumps(c.clear(a.id), indent=1))
        else:
            target = {k: v for k, v in (("device", a.device), ("point", a.point), ("bay", a.bay)) if v}
            fault: dict = {"kind": a.kind}
            if a.ms is not None:
                fault["ms"] = a.ms
            if a.jitter_ms is not None:
                fault["jitter_ms"] = a.jitter_ms
            for kv in a.param:
                k, sep, v = kv.partition("=")
                if not sep:
                    print(f"--param {kv!r}: expected KEY=VALUE", file=sys.stderr)
                    return 2
                try:
                    fault[k] = json.loads(v)
                except ValueError:
                    fault[k] = v
            print(json.dumps(c.inject(target, fault, a.duration, a.id), indent=1))
    except FaultApiChoice as e:
        print(f"gridgate fault: {e}", file=sys.stderr)
        return 2
    except FaultApiError as e:
        print(f"gridgate fault: {e}", file=sys.stderr)
        return 1
    return 0
