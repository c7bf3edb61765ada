"""``gridgate courier import DIR`` (the far side of the air gap) and ``gridgate lab check PROFILE``
(the reachability matrix of a profile). Registered by gateway/cli.py when importable."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DEFAULT_KEY = "~/.config/gridgate/courier.pub"
STATE_NAME = ".gridgate-import-state.json"  # dot file: import_dir never mistakes it for a bundle


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    c = sub.add_parser("courier", help="air-gap courier: verify and publish transferred bundles")
    csub = c.add_subparsers(dest="courier_cmd", metavar="ACTION", required=True)
    i = csub.add_parser("import", help="verify the bundles in DIR and publish them in order to a broker")
    i.add_argument("dir", help="transfer directory (the USB stick) holding *.ggb bundles")
    i.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="MQTT broker URL (default mqtt://127.0.0.1:1883)")
    i.add_argument("--key-file", default=DEFAULT_KEY, help=f"the gateway's Ed25519 public key, PEM (default {DEFAULT_KEY})")
    i.add_argument("--state", default=None, help=f"import progress file (default DIR/{STATE_NAME})")
    i.add_argument("--json", action="store_true", help="print the import report as JSON")

    lab = sub.add_parser("lab", help="network profiles: inspect and check them")
    lsub = lab.add_subparsers(dest="lab_cmd", metavar="ACTION", required=True)
    chk = lsub.add_parser("check", help="build PROFILE and print which zone can open which port on which other zone")
    chk.add_argument("profile", help="profile name (configs/profiles/NAME.yaml) or path")
    chk.add_argument("--ports", default=None, help="comma-separated ports to probe (default: the profile's allowed ports + 22)")
    chk.add_argument("--json", action="store_true")
    return {"courier": cmd_courier, "lab": cmd_lab}


# ---------------------------------------------------------------- courier


def cmd_courier(args: argparse.Namespace) -> int:
    from gateway.conduits.records import KeyError_
    from gateway.conduits.signing import load_verify_key

    d = Path(args.dir)
    if not d.is_dir():
        print(f"error: courier import: {d} is not a directory; pass the transfer directory holding the *.ggb bundles",
              file=sys.stderr)
        return 1
    try:
        key = load_verify_key(Path(args.key_file).expanduser())
    except KeyError_ as e:
        print(f"error: courier import: {e} (the gateway's public key, e.g. --key-file /path/to/courier.pub)", file=sys.stderr)
        return 1
    state = Path(args.state) if args.state else d / STATE_NAME
    try:
        rep = asyncio.run(_import(d, key, state, args.broker))
    except ConnectionError as e:
        print(f"error: courier import: {e}; nothing was imported (run again when the broker is up)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(rep)), flush=True)
    print(f"courier import {d}: {rep.summary()}", file=sys.stderr)
    if not rep.ok:
        print("courier import: FAILED — rejected or missing bundles were not published (see above)", file=sys.stderr)
    return 0 if rep.ok else 1


async def _import(d: Path, key: "Ed25519PublicKey", state: Path, broker: str):  # noqa: ANN202
    from gateway.conduits.courier import ImportReport, import_dir
    from gateway.conduits.mqtt_out import Republisher
    from gateway.northbound.mqtt import parse_url

    host, port, _tls = parse_url(broker)
    pub = Republisher(host, port)
    await pub.connect()
    rep = ImportReport()
    try:
        for bundle in import_dir(d, key, state, rep):
            for rec in bundle.records:
                await pub.publish(rec)
            if not await pub.drain():  # acknowledged before the bundle counts as imported
                raise ConnectionError(f"broker {broker} did not acknowledge bundle {bundle.path.name}; import again later")
    finally:
        await pub.close()
    return rep


# ---------------------------------------------------------------- lab check


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
