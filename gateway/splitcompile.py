"""A large site's first start on two cores: each of two processes validates, catalogues and encodes half of
the devices, then the halves are joined.

Why: a first start of a 10,000-point site is ~0.9 CPU-s of compile in one process (validation ~0.2, catalog
~0.15, encoding ~0.15, pydantic's import ~0.2, YAML 0.08 with the C builder), all of it before the first
value; the devices are ~97 % of the file and validate independently of each other. Each process also
validates the rest of the file (site, gateway, substations: a few % of it), so each half is a whole, valid
site on its own.

Two ways to halve a file. Where the C YAML builder is built (gateway/site/_yamlfast.c), the file is parsed
whole (0.08 CPU-s at 10,000 points) and the parsed *data* is halved (:func:`compile_split_data`): the second
process is forked after the parse and pydantic's import, so it starts with both. Without the builder each
process parses its half of the *text* (gateway/site/yamlsplit.py cuts it; PyYAML's ~0.85 CPU-s is halved
too): :func:`compile_split`.

What one half cannot see is checked on the join, from facts each half reports: device names, host and
port, measurement mRIDs and (equipment, type, phases) must not repeat across the halves (the checks of
``Config._references``; the others concern one device or the rest of the file, which both halves see).
Any problem (a YAML or validation error, a repeat across the halves, a cut the node tree does not
confirm) gives None: the caller then compiles the file in one process, which raises the error exactly
as before. A site is never used before every part of it has been validated.
"""

from __future__ import annotations

import logging
import marshal
import os
from itertools import accumulate
from pathlib import Path
from typing import Any

from gateway.site.isolate import Child, leave, start_child
from gateway.site.yamlsplit import Part, parse_part, split_devices

#: 1, 2 or auto (the default): the number of processes a large site's first start compiles in
PROCESSES_ENV = "GRIDGATE_COMPILE_PROCESSES"
log = logging.getLogger(__name__)


def worth_splitting() -> bool:
    """``GRIDGATE_COMPILE_PROCESSES=1`` or ``2`` overrides the rule below (benches; a site that knows its
    machine); ``auto``, the default, applies it. One core never splits.

    Two processes shorten the compile only where a second core is idle. With the C YAML builder the halves
    add little work (the data is halved after one parse); without it they add 15-25 % (each parses and
    validates the site's other sections). Either way, with another process busy on one of two cores they
    were slower than one: data halves 1.42-1.46 s against 1.13-1.19 s to the first value at load 1.6-1.9
    (Stop 26); text halves 1.7-1.9 s against 1.3-2.0 s at load 1.4, 2.6-3.0 against 2.2-2.8 s at load
    5.6-6.1 (Stop 24). A 1-minute load average under the number of cores less one says that, on average,
    more than a core is free."""
    if not hasattr(os, "fork"):
        return False
    cores = len(os.sched_getaffinity(0))
    forced = os.environ.get(PROCESSES_ENV, "auto").strip().lower()
    if forced not in ("auto", "1", "2"):
        log.warning("%s=%r: expected 1, 2 or auto; using auto", PROCESSES_ENV, forced)
    elif forced != "auto":
        return cores >= 2 and forced == "2"
    return cores >= 2 and os.getloadavg()[0] < cores - 1


def compile_split(path: str | Path) -> bytes | None:
    """The compiled site (gateway/startup.py's form) built by two processes from the halves of the file's text,
    or None (compile it whole)."""
    if not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")  # as gateway/site/load.py reads it
    except (OSError, UnicodeDecodeError):
        return None
    parts = split_devices(text)
    if parts is None:
        return None
    del text
    # before the fork: both halves need pydantic and the models (~0.2 CPU-s to import and build) before
    # they can validate, so importing them once here costs the first value nothing and saves the second
    import gateway.config  # noqa: F401
    return _both(start_child(_compile_part, parts[1]), _compile_part, parts[0])


def compile_split_data(data: Any) -> bytes | None:
    """The compiled site built by two processes from the halves of the file's parsed ``data`` (each with about
    half of the points), or None (compile it whole). ``data`` is not changed."""
    devices = data.get("devices") if isinstance(data, dict) else None
    if not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2 or not isinstance(devices, list) or len(devices) < 2:
        return None
    cut = _middle(devices)
    import gateway.config  # noqa: F401 - before the fork (see compile_split)

    # forked after the parse: the second process has the data (copy-on-write), nothing is sent to it
    return _both(start_child(_compile_data, {**data, "devices": devices[cut:]}),
                 _compile_data, {**data, "devices": devices[:cut]})


def _middle(devices: list) -> int:
    """Where to cut the device list (1 .. len - 1) so that each half has about half of the points (the first on a tie)."""
    ends = list(accumulate(len(d["points"]) if isinstance(d, dict) and isinstance(d.get("points"), list) else 1
                           for d in devices))
    return min(range(1, len(devices)), key=lambda i: abs(2 * ends[i - 1] - ends[-1]))


def _both(second: Child, fn: Any, first: Any) -> bytes | None:
    """``fn(first)`` here while ``second`` computes the other half; both joined, or None."""
    mine = theirs = None
    try:
        mine = fn(first)
        if mine is not None:
            try:
                theirs = second.result()
            except Exception:  # the second half failed: compile the file whole, which names the problem
                theirs = None
    finally:
        second.kill()  # not needed, failed, or this process is interrupted: stop it now (nothing once taken)
    if mine is None or theirs is None:
        return None
    return _join(mine, theirs)


def _compile_part(part: Part) -> tuple | None:
    """One half of the text: (head bytes, class table, device chunks, names, endpoints, mRIDs, topic keys), or None."""
    import yaml

    try:
        parsed = parse_part(part)
    except (yaml.YAMLError, RecursionError):
        return None
    if parsed is None:
        return None
    node, data = parsed
    leave(node)
    return _compile_data(data)


def _compile_data(data: Any) -> tuple | None:
    """One half of the data: see :func:`_compile_part`."""
    from pydantic import ValidationError

    from gateway.config import Config, drop_emulator_fields
    from gateway.site.tables import Encoder, model_classes
    from gateway.startup import encode_site

    try:
        cfg = Config.model_validate(data)
    except (ValidationError, RecursionError):
        return None
    leave(data, cfg)  # never freed: both processes end right after (isolate.leave)
    drop_emulator_fields(cfg, fields_sets=False)
    head, classes, chunks = encode_site(cfg, Encoder(model_classes(Config)))
    devices = cfg.devices
    return (marshal.dumps(head), classes, tuple(chunks),
            tuple(d.name for d in devices),
            tuple((d.host, d.port, d.enabled) for d in devices),
            tuple(cfg.measurement_mrid_text(p) for d in devices for p in d.points),
            tuple((p.measurement.equipment, p.measurement.type, p.measurement.phases) for d in devices for p in d.points))


def _join(one: tuple, two: tuple) -> bytes | None:
    """Both halves as one compiled site, or None if they disagree or repeat what must be unique."""
    from gateway.startup import assemble

    head1, classes1, chunks1, names1, eps1, mrids1, topics1 = one
    head2, classes2, chunks2, names2, eps2, mrids2, topics2 = two
    head = marshal.loads(head1)
    if classes1 != classes2 or head != marshal.loads(head2):
        return None
    if not set(names1).isdisjoint(names2) or not set(mrids1).isdisjoint(mrids2) or not set(topics1).isdisjoint(topics2):
        return None
    used = {(host, port) for host, port, _ in eps1}
    if any(enabled and (host, port) in used for host, port, enabled in eps2):
        return None
    return assemble(head, classes1, [*chunks1, *chunks2])
