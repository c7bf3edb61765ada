"""``gridgate cim export|import``: the site as a CGMES model and back.

Registered by :func:`register` (``gateway/cli.py`` picks it up with the other optional command groups).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml


def register(sub) -> dict:
    p = sub.add_parser("cim", help="CIM network models: export the site as CGMES 3.0, build a site from CGMES")
    cim = p.add_subparsers(dest="cim_cmd", metavar="ACTION", required=True)
    e = cim.add_parser("export", help="write the site as a CGMES 3.0 EQ document (measurements with the MQTT catalog's mRIDs)")
    e.add_argument("file", help="site config YAML")
    e.add_argument("-o", "--output", default=None, help="output file (default: stdout)")
    e.add_argument("--profiles", default="eq", type=_profiles,
                   help="eq (default: one document with the measurements) or eq,op (measurements in a separate "
                        "Operation profile file, named like the output with -op)")
    i = cim.add_parser("import", help="build a site YAML skeleton from a CGMES EQ model (.xml files or a .zip)")
    i.add_argument("model", nargs="+", help="CGMES RDF/XML files or a zip of profiles")
    i.add_argument("--substation", default=None, help="only this substation (name or mRID)")
    i.add_argument("-o", "--output", default=None, help="site YAML to write (default: stdout)")
    i.add_argument("--json", action="store_true", help="print the import report as JSON on stdout (needs -o)")
    return {"cim": cmd_cim}


def _profiles(v: str) -> tuple[str, ...]:
    ps = tuple(x.strip().lower() for x in v.split(",") if x.strip())
    if not ps or "eq" not in ps or not set(ps) <= {"eq", "op"}:
        raise argparse.ArgumentTypeError(f"expected eq or eq,op, got {v!r}")
    return ps


def cmd_cim(args: argparse.Namespace) -> int:
    return cmd_export(args) if args.cim_cmd == "export" else cmd_import(args)


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.cgmes.export import export
    from gateway.cgmes.topology import TopologyError
    from gateway.config import load_config
    from gateway.site.model import level_notes

    cfg = load_config(args.file)  # ConfigError: reported by gateway.cli.main
    for note in level_notes(cfg.substations):
        print(f"note: {note}", file=sys.stderr)
    try:
        docs = export(cfg, args.profiles)
    except TopologyError as e:
        print(f"error: {args.file}: {e}", file=sys.stderr)
        return 1
    if args.output is None:
        if len(docs) > 1:
            print("error: --profiles eq,op writes two files; give -o FILE", file=sys.stderr)
            return 2
        sys.stdout.buffer.write(docs["eq"])
        return 0
    out = Path(args.output)
    out.write_bytes(docs["eq"])
    written = [str(out)]
    if "op" in docs:
        op = out.with_name(out.name.replace("-eq", "-op")) if "-eq" in out.name else out.with_name(f"{out.stem}-op{out.suffix}")
        op.write_bytes(docs["op"])
        written.append(str(op))
    n = sum(len(d.points) for d in cfg.devices if d.enabled)
    print(f"{', '.join(written)}: CGMES 3.0 model of site {cfg.site.name} ({n} measurements)", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from gateway.cgmes.importer import build_site
    from gateway.cgmes.model import ModelError, read

    try:
        result = build_site(read(args.model), args.substation)
    except ModelError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 1
    ignored = ", ".join(f"{c} ×{n}" for c, n in sorted(result.ignored.items()))
    head = [f"# site skeleton built by `gridgate cim import` from {', '.join(args.model)}",
            "# network and measurements come from the model (with their mRIDs); devices, protocol addresses and",
            "# signals are a proposal (one IEC 61850 IED per feeder bay, one DNP3 RTU for the rest): edit them.",
            *(f"# note: {n}" for n in result.notes)]
    if ignored:
        head.append(f"# ignored classes (gridgate does not use them): {ignored}")
    text = "\n".join(head) + "\n" + yaml.safe_dump(result.site, sort_keys=False, width=140, allow_unicode=True)
    if args.output is None:
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    n = sum(len(d["points"]) for d in result.site["devices"])
    if args.json:
        print(json.dumps({"output": args.output, "points": n, "devices": len(result.site["devices"]),
                          "ignored": dict(result.ignored), "notes": result.notes}, indent=2))
    else:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        if ignored:
            print(f"ignored: {ignored}", file=sys.stderr)
        print(f"{args.output or 'stdout'}: site {result.site['site']['name']} with {n} points on "
              f"{len(result.site['devices'])} devices; check it with `gridgate validate`", file=sys.stderr)
    return 0
