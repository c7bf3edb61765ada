"""`gridgate scl export|check|cfg`: the SCL of the emulated IEDs out, a structural check of any SCL file,
and libiec61850's genconfig on it (CID → .cfg, an independent check that libiec61850's own tool takes it).

    gridgate scl export configs/primary-substation.yaml --ied ied-f1 -o KGM_F1.cid
    gridgate scl export configs/primary-substation.yaml --all -o out/      (one NAME.cid per IED)
    gridgate scl check KGM_F1.cid vendor.icd
    gridgate scl cfg KGM_F1.cid -o KGM_F1.cfg [--ied KGM_F1] [--genconfig genconfig.jar]

Registered like the other optional subsystems: ``register(sub)`` returns the command table.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable


def register(sub) -> dict[str, Callable[[argparse.Namespace], int]]:
    s = sub.add_parser("scl", help="IEC 61850 SCL: export the emulated IEDs as CID files, check SCL files")
    ss = s.add_subparsers(dest="scl_cmd", metavar="ACTION", required=True)
    e = ss.add_parser("export", help="write the CID of an emulated IED (what it serves: model, data sets, RCBs, address)")
    e.add_argument("config", help="site config YAML")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--ied", help="device name (or IED name) of one IEC 61850 device")
    g.add_argument("--all", action="store_true", help="every IEC 61850 device; -o is then a directory")
    e.add_argument("-o", "--output", required=True, help="output .cid file (or directory with --all); - for stdout")
    c = ss.add_parser("check", help="structural check of SCL files (references, types, enums, data sets, RCBs)")
    c.add_argument("files", nargs="+")
    g2 = ss.add_parser("cfg", help="libiec61850's genconfig: one IED of an SCL file → a libiec61850 .cfg model")
    g2.add_argument("file", help="SCL file (.cid/.icd/.scd)")
    g2.add_argument("-o", "--output", required=True, help="output .cfg file")
    g2.add_argument("--ied", help="IED name (an SCL file with several IEDs)")
    g2.add_argument("--genconfig", help="path of genconfig.jar (default: $GRIDGATE_GENCONFIG)")
    return {"scl": cmd_scl}


def cmd_scl(args: argparse.Namespace) -> int:
    cmds = {"export": cmd_scl_export, "check": cmd_scl_check, "cfg": cmd_scl_cfg}
    return cmds[args.scl_cmd](args)


def cmd_scl_cfg(args: argparse.Namespace) -> int:
    from devices.iec61850.genconfig import GenconfigError, to_cfg

    if not os.path.isfile(args.file):
        print(f"error: {args.file} does not exist; give an SCL file (.cid/.icd/.scd)", file=sys.stderr)
        return 1
    try:
        to_cfg(args.file, args.output, args.ied, args.genconfig)
    except GenconfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: libiec61850 model of {args.file}", file=sys.stderr)
    return 0


def cmd_scl_export(args: argparse.Namespace) -> int:
    from devices.iec61850.model import ModelError
    from devices.iec61850.scl import export_device, to_bytes
    from gateway.config import load_config
    from gateway.site.load import ConfigError

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ieds = [d for d in cfg.devices if d.protocol == "iec61850"]
    if not ieds:
        print(f"error: {args.config} has no IEC 61850 devices (protocol: iec61850)", file=sys.stderr)
        return 1
    if not args.all:
        ieds = [d for d in ieds if args.ied in (d.name, d.iec61850.ied_name)]
        if not ieds:
            names = ", ".join(d.name for d in cfg.devices if d.protocol == "iec61850")
            print(f"error: no IEC 61850 device {args.ied!r} in {args.config}; devices: {names}", file=sys.stderr)
            return 1
    if args.all and args.output != "-":
        os.makedirs(args.output, exist_ok=True)
    for d in ieds:
        try:
            data = to_bytes(export_device(d))
        except ModelError as e:
            print(f"error: device {d.name}: {e}", file=sys.stderr)
            return 1
        if args.output == "-":
            sys.stdout.buffer.write(data)
            continue
        path = os.path.join(args.output, f"{d.iec61850.ied_name or d.name}.cid") if args.all else args.output
        with open(path, "wb") as f:
            f.write(data)
        print(f"{path}: IED {d.iec61850.ied_name or d.name} ({d.name}), {d.host}:{d.port}", file=sys.stderr)
    return 0


def cmd_scl_check(args: argparse.Namespace) -> int:
    from devices.iec61850.scl_check import check
    from devices.iec61850.scl_in import SclError, parse

    worst = 0
    for path in args.files:
        try:
            problems = check(parse(path))
        except SclError as e:
            problems = [str(e)]
        for p in problems:
            print(f"{path}: {p}", file=sys.stderr)
        print(f"{path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        worst = max(worst, 1 if problems else 0)
    return worst


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (until the command is registered in gateway/cli.py)."""
    p = argparse.ArgumentParser(prog="gridgate")
    sub = p.add_subparsers(dest="cmd", required=True)
    cmds = register(sub)
    args = p.parse_args(argv)
    return cmds[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
