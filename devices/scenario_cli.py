"""``gridgate scenario run`` and ``gridgate fault inject|clear|list`` (registered by gateway/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from pathlib import Path
from typing import Callable

from gateway import shipped
from gateway.site.load import ConfigError


def register(sub) -> dict[str, Callable[[argparse.Namespace], int]]:
    s = sub.add_parser("scenario", help="run a fault scenario against emulated devices (+ gateway); exit 1 on a failed expectation")
    ss = s.add_subparsers(dest="scenario_cmd", metavar="ACTION", required=True)
    r = ss.add_parser("run", help="run a scenario file")
    r.add_argument("file", help="scenario file, or the name of a shipped one (e.g. feeder-fault-trip)")
    r.add_argument("--config", help="site config (default: the scenario's `config:`)")
    r.add_argument("--report", action="append", default=[], help="write the run report: out.json or out.html (repeatable)")
    r.add_argument("--broker", help="mqtt://host:port (default: an embedded loopback broker)")
    r.add_argument("--devices-only", action="store_true", help="run only the devices; the system under test is external")
    r.add_argument("--free-ports", action="store_true", help="move every device to a free loopback port (not with --devices-only)")
    r.add_argument("--api", action="store_true", help="also serve the live fault API on loopback")
    r.add_argument("--warmup", type=float, default=10.0, help="max seconds to wait for every point before the clock starts")
    r.add_argument("--profile", default=None,
                   help="network profile (configs/profiles/NAME.yaml; default: the scenario's `profile:`, else flat): "
                        "devices in field, gateway in gateway, broker + recorder in control; network faults "
                        "(link_down, partition, link_up, latency) act on its emulated links")
    ss.add_parser("schema", help="print the JSON Schema of scenario files")

    return {"scenario": _scenario}


def _scenario(a: argparse.Namespace) -> int:
    if a.scenario_cmd == "schema":
        from devices.scenario.model import Scenario

        print(json.dumps(Scenario.model_json_schema(), indent=1))
        return 0
    from devices.scenario.resolve import load_scenario
    from devices.scenario.runner import run_plan

    a.file = str(shipped.find(a.file, "scenario"))  # a path, or the name of a user's or a shipped scenario
    for out in a.report:
        if not out.lower().endswith((".json", ".html", ".htm")):
            print(f"--report {out}: give a .json or .html file name", file=sys.stderr)
            return 2
        parent = Path(out).resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            print(f"--report {out}: {parent} is not a writable directory; nothing was run", file=sys.stderr)
            return 2
    from gateway.cli import usage_error

    if (why := usage_error(a)) is not None:
        print(f"{why}; nothing was run", file=sys.stderr)
        return 2
    if a.free_ports and a.devices_only:
        print("--free-ports moves the devices where an external system under test cannot find them; drop one of the two",
              file=sys.stderr)
        return 2
    if a.profile is None:
        a.profile = _scenario_profile(a.file)
    if a.profile != "flat":
        return _in_profile(a)
    try:
        plan = load_scenario(a.file, a.config)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    if a.free_ports:
        from devices.scenario.ports import with_free_ports
        from devices.scenario.resolve import resolve

        plan = resolve(plan.scenario, with_free_ports(plan.cfg), a.file)
    api = functools.partial(_fault_api, scenario=a.file) if a.api else None
    res = asyncio.run(run_plan(plan, broker=a.broker, devices_only=a.devices_only, api=api,
                               progress=lambda m: print(m, file=sys.stderr, flush=True), warmup=a.warmup))
    return _finish(plan.scenario.name, res, a.report)


def _scenario_profile(path: str) -> str:
    """The scenario file's own ``profile:`` (errors in the file are reported by the full load)."""
    from gateway.site.load import load_yaml

    try:
        data, _ = load_yaml(path)
    except (ConfigError, OSError):
        return "flat"
    p = data.get("profile") if isinstance(data, dict) else None
    return p if isinstance(p, str) and p else "flat"


def _in_profile(a: argparse.Namespace) -> int:
    """``--profile NAME``: the whole run inside the profile's zones (devices/scenario/profiled.py)."""
    from devices.netlab.lab import LabError, LabUnavailable
    from devices.netlab.profile import load_profile
    from devices.netlab.run import ProfileRunError
    from devices.scenario.profiled import run_in_profile

    for flag, why in (("devices_only", "the profile places the gateway itself"), ("api", "the live API is loopback-only "
                      "and the devices run in the field zone"), ("broker", "the profile runs its own broker in the control zone")):
        if getattr(a, flag):
            print(f"--{flag.replace('_', '-')} does not combine with --profile: {why}", file=sys.stderr)
            return 2
    try:
        profile = load_profile(a.profile)
    except ValueError as e:
        print(f"--profile {a.profile}: {e}", file=sys.stderr)
        return 2
    try:
        res = run_in_profile(a.file, a.config, profile, warmup=a.warmup)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    except (ProfileRunError, LabError, LabUnavailable, OSError) as e:
        print(f"error: scenario --profile {profile.name}: {e}", file=sys.stderr)
        return 1
    return _finish(res.report["scenario"], res, a.report)


def _finish(name: str, res, reports: list[str]) -> int:  # noqa: ANN001 - RunResult, imported lazily
    from devices.scenario.report import write

    for out in reports:
        write(res.report, out)
    h = res.report["headline"]
    lat = h["detection_latency_max"]
    print(f"{name}: {h['faults']} faults, detection latency max "
          f"{'—' if lat is None else f'{lat * 1000:.0f} ms'}, {h['undetected_faults']} undetected")
    for v in res.verdicts:
        print(f"  {'PASS' if v.passed else 'FAIL'} {v.where}: {v.name} — {v.detail}")
    for e in res.errors:
        print(f"  ERROR {e}")
    print("PASSED" if res.passed else "FAILED")
    return 0 if res.passed else 1


async def _fault_api(injector, scenario: str):  # noqa: ANN001, ANN202 - the run's Injector → a started FaultApiServer
    """Named after the scenario file (``gridgate fault --name stuck-analogue``)."""
    from devices.faultapi.server import FaultApiServer

    return await FaultApiServer(injector, config=scenario).start()
