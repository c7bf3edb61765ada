"""``gridgate courier import DIR``: the control side of the air gap verifies the transferred bundles
and publishes them in order to its broker."""

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

    return {"courier": cmd_courier}




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
