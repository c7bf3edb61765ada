"""A large site file validated a few hundred devices at a time, on two cores, for commands that keep only
compact products of it (the emulator's loader, devices/emusite.py; ``gridgate validate``'s summary).

Why: a 9,500-device file (55 MB, 190,000 points) parsed whole was libyaml's node tree (~2.5 GB: a node
object and two marks per scalar), then the data and the pydantic model beside it: 3.2 GB peak and ~21
CPU-s in one process (docs/performance.md, "Stop 25"). Here the devices list is cut into parts of about
2 MB of text (gateway/site/yamlsplit.py, ``bare``: a part holds only its devices). The first part, with
the rest of the file, is parsed and validated first; then a second process takes the second half of the
parts while this one takes the first, and each part is parsed, validated as a site of its own (the rest
of the file's validated models given as they are: pydantic does not validate an instance again) and
handed to ``per_part``; its node tree, data and model are dropped before the next part.

What one part cannot see is checked across all of them from the facts each reports (names, host and
port, measurement mRIDs, (equipment, type, phases): :func:`gateway.site.yamlsplit.repeats`). Any problem
(a YAML or validation error, an unconfirmed cut, a repeat, a site with a plant model, ``per_part``
refusing a part) gives None: the caller then loads the file whole, which raises its errors exactly as
before. A result is never used before every part of the site has been validated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from gateway.site.isolate import start_child
from gateway.site.load import whole_file_is_faster
from gateway.site.yamlsplit import Part, facts, parse_part, repeats, split_devices

T = TypeVar("T")

#: text per part: ~350 devices of 20 points, ~100 MB of node tree and model while it is built
PART_BYTES = 2 * 1024 * 1024


class _Refused(Exception):
    """A part that cannot be taken as it is (the caller loads the file whole)."""


def load_parts(path: str | Path, per_part: Callable[[Any, tuple[bytes, ...]], T | None]) -> list[T] | None:
    """``per_part(cfg, mrids)`` of every part in file order (``cfg``: a validated Config holding that part's
    devices and the rest of the site; ``mrids``: its points' measurement mRIDs, 16 bytes each, in order), or
    None (load the file whole)."""
    if not hasattr(os, "fork") or whole_file_is_faster():
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")  # as gateway/site/load.py reads it
    except (OSError, UnicodeDecodeError):
        return None
    parts = split_devices(text, max(2, len(text) // PART_BYTES), bare=True)
    del text
    if parts is None:
        return None
    try:
        first = _part(parts[0], None, per_part)
        head = first[2]
        if head["plant"] is not None:
            return None  # plant checks read devices of the whole site
        rest = parts[1:]
        # this process also joins the parts after them (the caller's join: for the emulator, compiling the
        # firmware plan, ~3 parts' worth at 9,500 devices): the helper takes a little more than half
        mine, theirs = (rest[:len(rest) * 9 // 20], rest[len(rest) * 9 // 20:]) if _two_cores() else (rest, ())
        done = [first[:2]]
        if theirs:
            done += _with_helper(lambda: [_part(p, head, per_part)[:2] for p in theirs],
                                 lambda: [_part(p, head, per_part)[:2] for p in mine])
        else:
            done += [_part(p, head, per_part)[:2] for p in mine]
    except _Refused:
        return None
    if repeats([f for f, _ in done]):
        return None
    return [out for _, out in done]


def _two_cores() -> bool:
    """A second process whenever there are two cores: ~25 CPU-s of work at 9,500 devices, of which the helper's
    own cost (pickling its results back) is ~1.5, and on a shared machine two runnable processes get about
    twice the CPU time of one (unlike a 10,000-point gateway's ~1.5 CPU-s compile: gateway/splitcompile.py)."""
    return len(os.sched_getaffinity(0)) >= 2


def _with_helper(theirs: Callable[[], list], mine: Callable[[], list]) -> list:
    """``mine() + theirs()``, ``theirs`` run in a forked process meanwhile (gateway/site/isolate.py
    ``start_child``); raises _Refused if either fails, and stops the helper if this process fails first."""
    child = start_child(theirs)
    try:
        first = mine()
    except BaseException:
        child.kill()
        raise
    try:
        got = child.result()
    except Exception:  # refused, or the helper died: the caller loads the file whole
        raise _Refused() from None
    return first + got


def _part(part: Part, head: dict | None, per_part: Callable[[Any, tuple[bytes, ...]], T | None]) -> tuple[tuple, T, dict]:
    """(facts, per_part's result, the rest of the site as validated models) of one part; raises _Refused."""
    import yaml
    from pydantic import ValidationError

    from gateway.config import Config

    try:
        parsed = parse_part(part)
        if parsed is None:
            raise _Refused()
        data = parsed[1]
        del parsed  # the node tree, ~70 % of the part's memory: gone before the model is built
        if head is not None:
            if list(data) != ["devices"]:
                raise _Refused()
            data = {**head, "devices": data["devices"]}
        cfg = Config.model_validate(data)
    except (yaml.YAMLError, ValidationError, RecursionError):
        raise _Refused() from None
    del data
    found = facts(cfg)
    try:
        out = per_part(cfg, found[2])
    except Exception:  # e.g. a point the firmware refuses: the whole load says it, after validating every part
        raise _Refused() from None
    if out is None:
        raise _Refused()
    rest = {name: getattr(cfg, name) for name in Config.model_fields if name != "devices"}
    return found, out, rest
