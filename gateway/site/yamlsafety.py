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

#: nodes a document may expand to through aliases (a 10,000-point site is ~200,000)
MAX_EXPANDED_NODES = 2_000_000
#: integers beyond 64 bits are no valid value anywhere in a site file
MAX_INT_BITS = 64
_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")


class ExpansionError(yaml.MarkedYAMLError):
    """Aliases expand too far, or refer to themselves."""


def check_expansion(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """The number of nodes ``root`` expands to; ExpansionError (with the alias's mark) above ``limit``."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order walk over the node graph (shared nodes visited once)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in _children(node))
            if total > limit:
                raise ExpansionError(
                    None, None,
                    f"aliases expand this document to more than {limit:,} nodes (a 'billion laughs' file?); "
                    "use fewer nested aliases",
                    node.start_mark,
                )
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
