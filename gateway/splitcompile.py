"""A large site's first start on two cores: each of two processes parses, validates, catalogues and
encodes half of the devices (gateway/site/yamlsplit.py cuts the text), then the halves are joined.

Why: a first start of a 10,000-point site is ~1.5 CPU-s in one process (YAML ~0.6, validation,
catalog and encoding the rest), all of it before the first value; the devices are ~97 % of the file
and validate independently of each other. Each process also parses and validates the rest of the
file (site, gateway, substations: a few % of it), so each half is a whole, valid site on its own.

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
from pathlib import Path

from gateway.site.isolate import start_child
from gateway.site.load import whole_file_is_faster
from gateway.site.yamlsplit import Part, parse_part, split_devices

#: what a part built, never freed: both processes end right after (the loader child and the second half
#: both leave through ``os._exit``), and freeing 5,000 points' nodes, dicts and models took ~0.05 s each
_LEFT: list = []
#: 1, 2 or auto (the default): the number of processes a large site's first start compiles in
PROCESSES_ENV = "GRIDGATE_COMPILE_PROCESSES"
log = logging.getLogger(__name__)


def worth_splitting() -> bool:
    """``GRIDGATE_COMPILE_PROCESSES=1`` or ``2`` overrides the rule below (benches; a site that knows its
    machine); ``auto``, the default, applies it: one process where the C YAML builder is built, else:

    Two processes shorten the compile only where a second core is idle: they do 15-25 % more work in all
    (each parses and validates the site's other sections; copy-on-write; the join), and with another
    process busy on one of two cores they were not faster than one (10k points: 1.7-1.9 s against
    1.3-2.0 s at load 1.4; 2.6-3.0 s against 2.2-2.8 s at load 5.6-6.1). A 1-minute load average under
    the number of cores less one says that, on average, more than a core is free."""
    if not hasattr(os, "fork"):
        return False
    cores = len(os.sched_getaffinity(0))
    forced = os.environ.get(PROCESSES_ENV, "auto").strip().lower()
    if forced not in ("auto", "1", "2"):
        log.warning("%s=%r: expected 1, 2 or auto; using auto", PROCESSES_ENV, forced)
    elif forced != "auto":
        return cores >= 2 and forced == "2"
    if whole_file_is_faster():
        return False
    return cores >= 2 and os.getloadavg()[0] < cores - 1


def compile_split(path: str | Path) -> bytes | None:
    """The compiled site (gateway/startup.py's form) built by two processes, or None (compile it whole)."""
    if not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2:
        return None
    _LEFT.clear()
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
    second = start_child(_compile_part, parts[1])  # dies with this process (SIGTERM during start-up)
    mine = theirs = None
    try:
        mine = _compile_part(parts[0])
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
    """One half: (head bytes, class table, device chunks, names, endpoints, mRIDs, topic keys), or None."""
    import yaml
    from pydantic import ValidationError

    from gateway.config import Config, drop_emulator_fields
    from gateway.site.tables import Encoder, model_classes
    from gateway.startup import encode_site

    try:
        parsed = parse_part(part)
        if parsed is None:
            return None
        node, data = parsed
        cfg = Config.model_validate(data)
    except (yaml.YAMLError, ValidationError, RecursionError):
        return None
    _LEFT.append((node, data, cfg))
    drop_emulator_fields(cfg)
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
