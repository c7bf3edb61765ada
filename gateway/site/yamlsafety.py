"""Limits on what a YAML config may make the loader do (a hostile or broken site file).

- Alias expansion: ``&a [*b, *b, ...]`` chains (the "billion laughs") compose into a small
  node graph that every later walk (line map, pydantic) sees as an exponential tree. The
  graph's expanded size is computed once, memoised per node, and refused above a bound;
  a recursive alias (``&a [*a]``) is refused outright.
- Integers: a scalar with thousands of digits would make Python's ``int()`` fail without
  a line, or pass and overflow later; integers are bounded to 64 bits at construction.
"""

from __future__ import annotations

import re

import yaml

#: nodes a document may expand to through aliases (a 10,000-point site is ~200,000) — or, for a
#: larger file, this many times the nodes it really holds (200,000 points are ~5,000,000 nodes)
MAX_EXPANDED_NODES = 2_000_000
EXPANSION_FACTOR = 4
#: integers beyond 64 bits are no valid value anywhere in a site file
MAX_INT_BITS = 64
_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")


class ExpansionError(yaml.MarkedYAMLError):
    """Aliases expand too far, or refer to themselves."""


def check_expansion(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """The number of nodes ``root`` expands to; ExpansionError (with the alias's mark) above ``limit``
    or ``EXPANSION_FACTOR`` times the distinct nodes, whichever is more.

    The walk visits each distinct node once, so it is linear in the file however far aliases expand."""
    size: dict[int, int] = {}
    first_over: yaml.Node | None = None  # the innermost node past ``limit``: where the error points
    on_path: set[int] = set()
    # iterative post-order walk over the node graph (shared nodes visited once)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = min(1 + sum(size[id(c)] for c in _children(node)), 1 << 62)  # bounded: no huge ints
            if total > limit and first_over is None:
                first_over = node
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise ExpansionError(None, None, "an alias refers to the node that contains it (a recursive alias); "
                                 "a site file must be a tree", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        for c in _children(node):
            if id(c) in on_path:
                raise ExpansionError(None, None, "an alias refers to the node that contains it (a recursive alias); "
                                     "a site file must be a tree", c.start_mark)
            if id(c) not in size:
                stack.append((c, False))
    bound = max(limit, EXPANSION_FACTOR * len(size))
    if size[id(root)] > bound:
        raise ExpansionError(
            None, None,
            f"aliases expand this document to more than {bound:,} nodes (a 'billion laughs' file?); "
            "use fewer nested aliases",
            (first_over or root).start_mark,
        )
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def construct_bounded_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """YAML ints (decimal, 0x, 0o, 0b, sexagesimal), refused beyond 64 bits with the scalar's mark."""
    text = str(node.value).replace("_", "")
    digits = text.lstrip("+-")
    if len(digits) > 40 or (_INT.match(node.value) is None and len(digits) > 70):
        raise yaml.constructor.ConstructorError(
            None, None, f"integer of {len(digits)} digits is out of range (at most {MAX_INT_BITS} bits)", node.start_mark
        )
    value = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    if abs(value) >= 1 << MAX_INT_BITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"integer {value} is out of range (at most {MAX_INT_BITS} bits)", node.start_mark
        )
    return value
