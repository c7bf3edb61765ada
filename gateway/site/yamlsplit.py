"""Cut a site file's ``devices:`` list in two texts that two processes parse and validate side by side.

Each part is the whole file with the other part's device lines blanked (every line kept, so lines and
columns are the file's own): part one holds the devices before the cut, part two those from the cut on,
both with the same ``site``, ``gateway``, ``substations``... A first start of a 10,000-point site is
mostly parsing and validating its devices (~1.5 CPU-s, gateway/startup.py); two cores halve the wall time.

The cut is only a guess from the text (a ``- `` line at the list's indentation near the middle); the
parsed node tree confirms it (:func:`confirms`): each part's device list must start at its first ``-``
and its last value end before the blanked lines, so no string or flow collection runs across the cut
and the parts are exactly the file's list, split. A file that cannot be cut or confirmed is parsed whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

#: after a line break: the next top-level line after the list (a key, or anything at column 0 that is not an
#: item or a comment). str.find and patterns that start with a literal: a 15 MB file is scanned in milliseconds
_TOP = re.compile(r"\n[^\s#\-]")
_REST_OF_LINE = re.compile(r"[ ]*(?:#[^\n]*)?(?:\n|$)")


@dataclass(frozen=True, slots=True)
class Part:
    """One process's text and where its device list must start and end (0-based line, column)."""

    text: str
    start: tuple[int, int]
    end: tuple[int, int]


def split_devices(text: str, parts: int = 2, bare: bool = False) -> tuple[Part, ...] | None:
    """``parts`` parts of ``text`` (block-style YAML with one top-level ``devices:`` list; fewer if it has fewer
    devices), or None. ``bare``: every part but the first blanks the rest of the file too, keeping only the
    ``devices:`` line and its own devices (for a caller that validates the rest once: devices/emusite.py)."""
    # aliases, anchors and tags (anywhere: a quoted `*` too, then it is simply parsed whole); directives, documents
    text_n = "\n" + text  # every line, the first too, starts after a line break
    if "*" in text or "&" in text or "!" in text or any(m in text_n for m in ("\n---", "\n...", "\n%")):
        return None
    at = text_n.find("\ndevices:")
    if at < 0 or text_n.find("\ndevices:", at + 1) >= 0:
        return None
    after = _REST_OF_LINE.match(text_n, at + len("\ndevices:"))
    if after is None:
        return None  # `devices:` with a value on its line (a flow list, ...)
    pos = after.end()
    while True:  # blank and comment lines, then the first item: its indentation is the list's
        eol = text_n.find("\n", pos)
        line = text_n[pos:eol if eol >= 0 else len(text_n)]
        body = line.lstrip(" ")
        if body and not body.startswith("#"):
            break
        if eol < 0:
            return None
        pos = eol + 1
    if not (body.startswith("- ") or body == "-"):
        return None
    d = len(line) - len(body)
    top = _TOP.search(text_n, pos)
    tail = top.start() + 1 if top is not None else len(text_n)
    mark = "\n" + " " * d + "-"
    items = []
    i = pos - 1
    while (i := text_n.find(mark, i, tail)) >= 0:
        if text_n[i + len(mark):i + len(mark) + 1] in (" ", "\n"):
            items.append(i + 1)
        i += len(mark)
    if len(items) < 2 or parts < 2:
        return None
    cuts: list[int] = [pos]  # where each part's devices start (a `-` line), then the list's end
    for k in range(1, min(parts, len(items))):
        aim = pos + (tail - pos) * k // parts
        cut = min((x for x in items if x > cuts[-1]), key=lambda x: abs(x - aim), default=None)
        if cut is None:
            break
        cuts.append(cut)
    cuts.append(tail)
    line_r1 = text_n.count("\n", 0, pos) - 1  # the list's first item's line (0-based)
    lines = [line_r1]
    for a, b in zip(cuts, cuts[1:]):
        lines.append(lines[-1] + text_n.count("\n", a, b))
    key_line = text_n.count("\n", 0, at)  # the `devices:` line (0-based)
    bare_head = "\n" * key_line + "devices:" + "\n" * (line_r1 - key_line)
    out = []
    for k, (a, b) in enumerate(zip(cuts, cuts[1:])):
        head, rest = (bare_head, "") if bare and k else (text_n[1:pos], text_n[tail:])
        text_k = head + "\n" * (lines[k] - line_r1) + text_n[a:b] + "\n" * (lines[-1] - lines[k + 1]) + rest
        out.append(Part(text_k, (lines[k], d), (lines[k + 1], 0)))
    return tuple(out)


def confirms(root: Any, part: Part) -> bool:
    """True if the composed ``root`` node of ``part.text`` has its ``devices`` list where the cut put it."""
    if type(root) is not yaml.MappingNode:
        return False
    seq: Any = next((v for k, v in root.value if type(k) is yaml.ScalarNode and k.value == "devices"), None)
    if type(seq) is not yaml.SequenceNode or not seq.value:
        return False
    if (seq.start_mark.line, seq.start_mark.column) != part.start:
        return False
    node: Any = seq  # down to the last value of the last device: a scalar or a flow collection ends exactly there
    while type(node) is not yaml.ScalarNode and not node.flow_style:
        node = node.value[-1][1] if type(node) is yaml.MappingNode else node.value[-1]
    return (node.end_mark.line, node.end_mark.column) <= part.end


def parse_part(part: Part) -> tuple[Any, Any] | None:
    """(node tree, data) of ``part.text``, or None if its ``devices`` list is not where the cut put it
    (:func:`confirms`); raises PyYAML's errors. The node tree is handed back for the caller to drop when it
    chooses (freeing it is ~0.2 s of a 10,000-point half: a process that ends right after keeps it)."""
    from gateway.site.load import _construct_tree, _LineLoader

    loader = _LineLoader(part.text)
    try:
        node = loader.get_single_node()
        if not confirms(node, part):
            return None
        return node, _construct_tree(loader, node)
    finally:
        loader.dispose()


def facts(cfg: Any) -> tuple:
    """What a part's validated site (a Config) tells :func:`repeats`: its devices' names, (host, port,
    enabled), measurement mRIDs (bytes) and (equipment, type, phases) keys."""
    devices = cfg.devices
    return (tuple(d.name for d in devices),
            tuple((d.host, d.port, d.enabled) for d in devices),
            tuple(cfg.measurement_mrid(p).bytes for d in devices for p in d.points),
            tuple((p.measurement.equipment, p.measurement.type, p.measurement.phases) for d in devices for p in d.points))


def repeats(parts: Any) -> bool:
    """True if the parts (their :func:`facts`, in file order) repeat what ``Config._references`` wants unique
    across the whole site: a device name, an enabled device's host and port used by an earlier device, a
    measurement mRID, an (equipment, type, phases). Each part was validated alone, so only repeats across
    parts are left to find."""
    names: set = set()
    used: set = set()
    mrids: set = set()
    topics: set = set()
    for n, eps, m, t in parts:
        if not names.isdisjoint(n) or not mrids.isdisjoint(m) or not topics.isdisjoint(t):
            return True
        if any(enabled and (host, port) in used for host, port, enabled in eps):
            return True
        names.update(n)
        mrids.update(m)
        topics.update(t)
        used.update((host, port) for host, port, _ in eps)
    return False
