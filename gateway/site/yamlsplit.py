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


def split_devices(text: str) -> tuple[Part, Part] | None:
    """Two parts of ``text`` (block-style YAML with one top-level ``devices:`` list), or None."""
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
    if len(items) < 2:
        return None
    middle = (pos + tail) // 2
    cut = min(items[1:], key=lambda x: abs(x - middle))
    line_r1 = text_n.count("\n", 0, pos) - 1
    line_cut = line_r1 + text_n.count("\n", pos, cut)
    line_tail = line_cut + text_n.count("\n", cut, tail)
    one = Part(text_n[1:cut] + "\n" * (line_tail - line_cut) + text_n[tail:], (line_r1, d), (line_cut, 0))
    two = Part(text_n[1:pos] + "\n" * (line_cut - line_r1) + text_n[cut:], (line_cut, d), (line_tail, 0))
    return one, two


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
