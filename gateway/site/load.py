"""Reading YAML files into pydantic models (site files, scenarios, profiles), with errors a user can act on.

Every error names the file, the YAML path (``devices[2].points[5].address``), the line,
and what is allowed — never a traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.site.errors import ConfigError  # noqa: F401 - part of this API
from gateway.site.gcpause import gc_paused
from gateway.site.yamlsafety import ExpansionError, check_expansion, construct_bounded_int

M = TypeVar("M", bound=BaseModel)


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on large sites


class _LineLoader(_Base):  # type: ignore[misc, valid-type]
    """Safe loader that rejects duplicate keys; the composed node tree gives every key's line.

    libyaml calls back into Python to resolve every scalar's tag (~1 µs each, 335,000 scalars at
    10,000 points): a site repeats its keys and values, so the tag of each (text, implicit) is looked
    up once per load. A safe loader has no path resolvers, so the tag depends on nothing else.

    The composer also calls ``descend_resolver``/``ascend_resolver`` around every node, which do
    nothing without path resolvers: ~670,000 Python calls at 10,000 points. Without path resolvers the
    three are instance attributes that run in C (the composer looks them up on the instance): a cache
    of ``resolve`` (``functools.lru_cache``) and two builtins whose results are dropped (``slice``
    takes the two arguments, ``tuple`` none). Composing a 10,000-point site: 0.44 → 0.35 CPU-s."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._tags: dict[tuple, str] = {}
        if not self.yaml_path_resolvers:
            self.resolve = functools.lru_cache(maxsize=None)(super().resolve)  # type: ignore[method-assign]
            self.descend_resolver = slice  # type: ignore[method-assign, assignment]
            self.ascend_resolver = tuple  # type: ignore[method-assign, assignment]

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and not self.yaml_path_resolvers:
            key = (value, implicit)
            tag = self._tags.get(key)
            if tag is None:
                tag = self._tags[key] = super().resolve(kind, value, implicit)
            return tag
        return super().resolve(kind, value, implicit)


_STR = "tag:yaml.org,2002:str"


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        # a plain string key is its text (what construct_object would return): one Python call less per key,
        # ~170,000 keys at 10,000 points
        key = key_node.value if key_node.tag == _STR and type(key_node) is yaml.ScalarNode else \
            loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:int", construct_bounded_int)

_fast_load: Callable[[str], object] | None = None
try:  # C: libyaml's events -> Python data (gateway/site/_yamlfast.c); not built without libyaml-dev or a compiler
    from gateway.site._yamlfast import load as _c_load

    if _Base is getattr(yaml, "CSafeLoader", None):  # its parser must be the one PyYAML uses, libyaml
        _fast_load = _c_load
except ImportError:
    pass


def whole_file_is_faster() -> bool:
    """Whether one process reading a whole site file beats cutting it in parts (gateway/splitcompile.py's halves,
    gateway/chunkload.py's parts): true where the C builder is built, since a part still composes PyYAML's node
    tree (its marks confirm the cut). Measured, load 0.2-0.6 (Stop 25): a 10,000-point gateway's first value
    one process 1.19 s, two 1.83 s; a cold `gridgate emulate` of 9,500 devices (55 MB) whole 12.1 s / 11.9
    CPU-s / 1.5 GB peak, parts 22.6 s / 31.5 CPU-s / 0.96 GB. Without the builder the parts stay (3.1 GB whole).
    Where it is true, gateway/splitcompile.py halves the parsed data instead of the text (Stop 26)."""
    return _fast_load is not None


_MAP, _SEQ = yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG
_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_BOOL_TAG, _NULL_TAG = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_BOOLS = yaml.constructor.SafeConstructor.bool_values
_Scalar, _Mapping, _Sequence = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode


def _construct_tree(loader: _LineLoader, node: yaml.Node) -> Any:
    """What ``loader.construct_document(node)`` returns for a node *tree* (no aliases), built in one walk.

    PyYAML's constructor costs ~3 µs a node (generic dispatch, recursion bookkeeping, a generator per
    collection): 0.9 of the 1.6 CPU-s of a 10,000-point site's first load. Plain strings, decimal ints,
    floats, bools, nulls, maps and lists are built here directly, with the same values and the same
    duplicate-key and integer-bound errors; anything else (merge keys, timestamps, binary, sets, tagged
    nodes, non-scalar keys, octal or sexagesimal ints) goes through the loader as before.
    (tests/site/test_yaml_fast_construct.py compares both on the shipped files and on edge cases.)"""
    cls = type(node)
    tag = node.tag
    if cls is _Scalar:
        v = node.value
        if tag == _STR:
            return v
        if tag == _INT_TAG:
            if v.isdigit() and len(v) < 19 and (v[0] != "0" or v == "0"):  # plain decimal, well inside 64 bits
                return int(v)
        elif tag == _FLOAT_TAG:
            try:
                return float(v)
            except ValueError:
                pass  # .inf, .nan, sexagesimal: PyYAML's rules
        elif tag == _BOOL_TAG:
            return _BOOLS[v.lower()]
        elif tag == _NULL_TAG:
            return None
        return loader.construct_object(node, deep=True)
    if cls is _Mapping and tag == _MAP:
        out: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        for k, v in node.value:
            if type(k) is not _Scalar or k.tag == "tag:yaml.org,2002:merge":
                return loader.construct_object(node, deep=True)  # merge keys, complex keys: PyYAML's way
            key = _construct_tree(loader, k)
            if key in lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {lines[key] + 1})", k.start_mark
                )
            try:
                lines[key] = k.start_mark.line
            except TypeError:  # an unhashable key: PyYAML's error
                return loader.construct_object(node, deep=True)
            out[key] = _construct_tree(loader, v)
        return out
    if cls is _Sequence and tag == _SEQ:
        return [_construct_tree(loader, x) for x in node.value]
    return loader.construct_object(node, deep=True)


def _lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map every YAML path (tuple of keys/indexes) to its 1-based line."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)  # a key's own line wins over its block value's first line
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            out[path + (key,)] = k.start_mark.line + 1
            _lines(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, path + (i,), out)
    return out


def format_loc(loc: tuple) -> str:
    s = ""
    for part in loc:
        if isinstance(part, int):
            s += f"[{part}]"
        else:
            s += ("." if s else "") + str(part)
    return s or "(top level)"


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union-tag segments (``modbus``, ``constant``) that are not YAML keys.

    A union tag is the value of the discriminating key (``protocol: dnp3``, ``kind: sine``), so no list
    of protocols or signal kinds is needed. Pydantic puts the tag right after the mapping it selects a
    model for, before any key: the first segment at a mapping that equals one of its string values is
    the tag, even where a key has the same name (``protocol: dnp3`` beside a ``dnp3:`` options block).
    """
    out: list = []
    cur = data
    tag_checked = False
    for part in loc:
        if isinstance(part, str) and part.startswith("function-after"):
            continue
        if (isinstance(cur, dict) and isinstance(part, str) and not tag_checked
                and part in {v for v in cur.values() if isinstance(v, str)}):
            tag_checked = True
            continue
        tag_checked = False
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            out.append(part)
            cur = cur[part]
        else:  # a missing field, or below a scalar
            out.append(part)
            cur = None
    return tuple(out)


def out_is_leaf(v: Any) -> bool:
    return not isinstance(v, (dict, list))




def _message(err: Any) -> str:
    t = err["type"]
    msg = err["msg"]
    ctx = err.get("ctx") or {}
    if t == "extra_forbidden":
        return "unknown key; remove it or check its spelling (see `gridgate schema`)"
    if t == "missing":
        return "required key is missing"
    if t == "literal_error":
        return f"{err.get('input')!r} is not allowed; expected one of {ctx.get('expected', '')}"
    if t == "union_tag_invalid":
        return f"{ctx.get('tag')!r} is not a known {ctx.get('discriminator', 'kind')}; expected one of {ctx.get('expected_tags')}"
    if t == "union_tag_not_found":
        return f"needs a {ctx.get('discriminator', 'kind')} key"
    if t == "value_error":
        return str(ctx.get("error", msg)).removeprefix("Value error, ")
    return msg


def _parse_path(text: str) -> tuple:
    """``devices[2].points[5].address`` → ('devices', 2, 'points', 5, 'address')"""
    out: list = []
    for part in text.split("."):
        name, *idx = part.replace("]", "").split("[")
        if name:
            out.append(name)
        out.extend(int(i) for i in idx)
    return tuple(out)


def _model_errors(e: ValidationError, data: Any, lines: dict[tuple, int]) -> list[str]:
    """One line per problem: ``yaml.path: what is wrong and what is allowed (line N)``.

    Validators that check across fields raise ``@relative.path: message`` lines; the path
    is appended to pydantic's location so the user sees the exact key.
    """
    problems: list[str] = []
    for err in e.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]), data)
        for msg in _message(err).split("\n"):
            where = loc
            if msg.startswith("@") and ": " in msg:
                rel, msg = msg[1:].split(": ", 1)
                where = loc + _parse_path(rel)
            line, probe = None, where
            while probe and line is None:
                line = lines.get(probe)
                probe = probe[:-1]
            problems.append(f"{format_loc(where)}: {msg}" + (f" (line {line})" if line else ""))
    return problems


def load_yaml(path: str | Path, lines: bool = True) -> tuple[Any, dict[tuple, int] | None]:
    """(data, YAML path → line); ``lines=False``: no line map (None), for callers that parse again
    only when validation fails (the map is a walk of every node: 0.3 s of a 10,000-point site)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), [f"cannot read: {e}"]) from None
    node = None
    with gc_paused():  # ~50 objects per point, none garbage: collections in between made large sites quadratic
        if not lines and _fast_load is not None:
            # C from libyaml's events, without PyYAML's Event and Node objects: a 10,000-point site
            # (2.9 MB) 0.85 -> 0.08 CPU-s (docs/performance.md, Stop 25). What it does not build itself
            # (tags, aliases, duplicate keys, errors, ...) it leaves to PyYAML below: the same data or error.
            data = _fast_load(text)
            if data is not NotImplemented:
                return data, None
        try:
            loader = _LineLoader(text)
            try:
                node = loader.get_single_node()
                if node is not None and "*" in text:  # without a '*' there is no alias: the nodes form a tree
                    check_expansion(node)  # before any walk of the graph: the line map and pydantic would expand it
                if node is None:
                    data = None
                elif "*" in text:  # aliases share nodes (and the expansion bound applies): PyYAML's constructor
                    data = loader.construct_document(node)
                else:
                    data = _construct_tree(loader, node)
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            bounded = node is not None and mark is not None and not isinstance(e, ExpansionError)
            at = _path_at(node, mark) if bounded else ""
            raise ConfigError(str(path), [f"{at}{where}not valid YAML: {e.problem or e.context}"]) from None
        except yaml.YAMLError as e:
            raise ConfigError(str(path), [f"not valid YAML: {e}"]) from None
        except RecursionError:
            raise ConfigError(str(path), ["nested too deeply to be a site file; flatten the structure"]) from None
        else:
            if not lines:
                return data, None
            return data, (_lines(node) if node is not None else {})  # ~50 tuples per point: also without collections


def _path_at(node: yaml.Node, mark: yaml.Mark) -> str:
    """``yaml.path: `` of the deepest node starting at ``mark`` (for errors raised while constructing)."""
    try:
        lines = _lines(node)
    except RecursionError:
        return ""
    best: tuple | None = None
    for p, line in lines.items():
        if line == mark.line + 1 and (best is None or len(p) > len(best)):
            best = p
    return f"{format_loc(best)}: " if best else ""


#: :func:`load_model`'s ``data`` when the caller has not read the file
UNREAD: Any = object()


def read_data(path: str | Path, cache: bool = False) -> Any:
    """A file's parsed data without the line map (:func:`load_model` parses again for it only if validation
    fails); ``cache``: reuse or keep the parsed data of a file with the same bytes (:mod:`gateway.site.configcache`)."""
    return (_cached_yaml(path) if cache else load_yaml(path, lines=False))[0]


def load_model(path: str | Path, model: type[M], cache: bool = False, data: Any = UNREAD) -> M:
    """``cache``: see :func:`read_data`; ``data``: the file's :func:`read_data`, when the caller has read it already."""
    if data is UNREAD:
        data = read_data(path, cache)
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["expected a mapping at the top level (key: value lines), got " + type(data).__name__])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        data, lines = load_yaml(path)  # parse once more, for the line numbers of the errors
        raise ConfigError(str(path), _model_errors(e, data, lines or {})) from None


def _cached_yaml(path: str | Path) -> tuple[Any, dict[tuple, int] | None]:
    """(data, None) from the cache, else :func:`load_yaml` and the data cached for next time."""
    from gateway.site import configcache

    try:
        raw = Path(path).read_bytes()
    except OSError:
        return load_yaml(path)  # says what is wrong with the file
    data = configcache.get(raw)
    if data is not None:
        return data, None
    data, _ = load_yaml(path, lines=False)  # the line map only if validation fails (load_model parses again)
    configcache.put(raw, data)
    return data, None
