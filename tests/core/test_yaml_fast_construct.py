"""The site loader's one-walk constructor gives exactly what PyYAML's constructor gives (issue 18:
first start of a large site), and the same errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml

from gateway.site import load
from gateway.site.load import ConfigError, load_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "*" not in p.read_text(encoding="utf-8"))

EDGES = """
plain: text
quoted: "123"
ints: [0, 7, 42, 123456789012345678, -5, +5, 0o17, 017, 0x1F, 1_000, 1:30, 9223372036854775807]
floats: [1.5, -0.25, 1., .5, 1.0e+3, 1_000.5, .inf, -.Inf, .nan, 1:30.5]
bools: [yes, No, TRUE, off, On, false]
nulls: [~, null, Null, ]
tagged: [!!str 12, !!int "12", !!float "2", !!binary aGk=, 2001-12-14]
keys: {2: a, 2.5: b, true: c, null: d, "1": e}
nested: {a: {b: [1, {c: [x, y]}]}}
empty_map: {}
empty_seq: []
"""


def _both(text: str) -> tuple[object, object]:
    def build(fast: bool) -> object:
        loader = load._LineLoader(text)
        try:
            node = loader.get_single_node()
            return load._construct_tree(loader, node) if fast else loader.construct_document(node)
        finally:
            loader.dispose()

    return build(True), build(False)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    return a == b


def test_edge_cases_build_the_same_values_and_types() -> None:
    fast, slow = _both(EDGES)
    assert _same(fast, slow), (fast, slow)
    assert fast["ints"][7] == 0o17 and fast["ints"][10] == 90  # type: ignore[index]  # YAML 1.1 octal, sexagesimal


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_file_builds_the_same(path: Path) -> None:
    fast, slow = _both(path.read_text(encoding="utf-8"))
    assert _same(fast, slow)


def test_large_site_is_the_same(tmp_path) -> None:
    from bench.bench_gateway import site

    text = yaml.safe_dump(site(2000, 4, 0.5), sort_keys=False)
    fast, slow = _both(text)
    assert _same(fast, slow) and len(fast["devices"]) == 4  # type: ignore[index]


@pytest.mark.parametrize("text, message", [
    ("a: 1\nb: 2\na: 3\n", "duplicate key 'a' (first on line 1)"),
    ("x:\n  - {k: 1, k: 2}\n", "duplicate key 'k' (first on line 2)"),
    ("n: 123456789012345678901234567890\n", "out of range"),
])
def test_errors_name_the_place_as_before(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_yaml(path, lines=False)
    assert message in str(e.value) and "line" in str(e.value)


# --- the C builder (gateway/site/_yamlfast.c): the same data as PyYAML, or NotImplemented and PyYAML decides ---

try:
    from gateway.site import _yamlfast
except ImportError:  # not built (no compiler or no libyaml-dev): the CI (GRIDGATE_REQUIRE_NATIVE=1) must build it
    _yamlfast = None  # type: ignore[assignment]
    if os.environ.get("GRIDGATE_REQUIRE_NATIVE") == "1":
        raise
needs_c = pytest.mark.skipif(_yamlfast is None, reason="gateway.site._yamlfast not built (needs libyaml-dev)")

ALL_SHIPPED = sorted([*(ROOT / "configs").rglob("*.yaml"), *(ROOT / "gateway" / "protocols").glob("*/sample-site.yaml"),
                      *(ROOT / "tests").rglob("*.yaml")])


def _pyyaml(text: str) -> object:
    """What load_yaml's PyYAML path builds (the loader's constructors, no fast path)."""
    loader = load._LineLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _check_c(text: str) -> bool:
    """True if the C builder built ``text`` itself (then with PyYAML's value and types)."""
    got = _yamlfast.load(text)
    if got is NotImplemented:
        return False
    assert _same(got, _pyyaml(text)), (text, got)
    assert _same(_yamlfast.load(text.encode()), got)
    return True


@needs_c
@pytest.mark.parametrize("path", ALL_SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_c_builds_every_shipped_file_as_pyyaml(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    handled = _check_c(text)
    if not any(mark in text for mark in ("*", "&", "!", "<<")):
        assert handled, "a shipped file without aliases or tags is the C builder's to build"


@needs_c
@pytest.mark.parametrize("points, devices", [(2000, 4), (10000, 20), (300, 150)])
def test_c_builds_bench_sites_as_pyyaml(points: int, devices: int) -> None:
    from bench.bench_gateway import site

    assert _check_c(yaml.safe_dump(site(points, devices, 0.5), sort_keys=False))
    assert _check_c(yaml.safe_dump(site(points, devices, 0.5), sort_keys=False, default_flow_style=True))


#: handled by C: every YAML 1.1 null and bool spelling, decimal ints, floats float() accepts, strings that only look typed
HANDLED = [
    "", "~", "null", "Null", "NULL", "nULL", "~~", "none", "None",
    "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
    "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N", "yES", "oN", "tRUE", "t", "f",
    "0", "-0", "+0", "7", "-5", "+5", "42", "123456789012345678", "-123456789012345678", "9a", "1-2", "12 34",
    "1.5", "-0.25", "+1.5", "1.", "-1.", ".5", "1.0e+3", "1.0E-3", "1.e+3", ".5e+2", "1_000.5", "1_0.0_1", "-0.0",
    "1.5e3", "1e+3", "1.0e3", "1.2.3", "10.0.0.1", "1.5.", ".", "..", "-", "+", "-.", "e", "E5", "1.0x",
    "0:30", "1:60", "1:", ":30", "12:3:", "1::2", "a:b", "200", "1e3", "1_000_x",
    "plain text", "ümlaut ✓ 字", "a'b", "0s", "08", "0o17", "-08", "0_8", "0.5s", "0x", "0b", "0xg", "0b2", "09:30", "0:60", "=x", "<", "<<<", "~x", "-a", ".x", "200-12-14",
    "x" * 5000,
]
#: left to PyYAML: octal, hex, binary, sexagesimal, underscores, >18 digits, .inf/.nan, timestamps, merge, value
FALLBACK = [
    "017", "00", "0_", "-017", "0x1F", "-0x1f", "0b101", "+0b1", "1_000", "1:30", "-1:30", "1:30:59",
    "1:30.5", "190:20:30.15", "1234567890123456789", "-1234567890123456789", "12345678901234567890123",
    ".inf", "-.Inf", "+.INF", ".nan", ".NaN", ".NAN", "1_.5", "1__0.5", "1.5_",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2002-12-14", "2001-12-14 x",
    "<<", "=", "0777", "0_7", "-00",
    "2001-1", "2001-x",  # not timestamps, but every timestamp starts YYYY-: PyYAML decides
]


def _docs(s: str) -> list[str]:
    """``s`` as a value, a list item, a flow item, a key and a flow key."""
    return [f"v: {s}\n", f"- {s}\n", f"[{s}]\n", f"{s}: v\n", f"{{{s}: 1}}\n"]


def _yaml_ok(text: str) -> bool:
    try:
        _pyyaml(text)
    except yaml.YAMLError:
        return False
    return True


@needs_c
@pytest.mark.parametrize("s", HANDLED, ids=lambda s: repr(s[:20]))
def test_c_builds_scalars_as_pyyaml(s: str) -> None:
    built = 0
    for text in _docs(s):
        if _yaml_ok(text):
            built += _check_c(text)
        else:
            assert _yamlfast.load(text) is NotImplemented
    for q in (f"'{s}'", f'"{s}"') if "'" not in s and '"' not in s else ():  # quoted: always strings
        for text in _docs(q):
            if _yaml_ok(text):  # (a key is at most 1,024 characters)
                assert _check_c(text) and isinstance(_yamlfast.load(text), (dict, list))
    assert built, f"{s!r} should be built by C in some position"


@needs_c
@pytest.mark.parametrize("s", FALLBACK, ids=repr)
def test_c_leaves_other_scalars_to_pyyaml(s: str) -> None:
    for text in _docs(s):
        assert _yamlfast.load(text) is NotImplemented, text
    for text in _docs(f"'{s}'"):  # quoted, the same text is a string C builds
        assert _check_c(text)


FALLBACK_DOCS = [
    "a: !!str 12\n", "a: !!int '12'\n", "!!map {a: 1}\n", "a: !custom x\n", "a: ! 12\n", "- !!binary aGk=\n",
    "a: &x 1\nb: *x\n", "a: &x 1\n", "a: &x [1, 2]\nb: *x\n", "base: &b {x: 1}\nc: {<<: *b, y: 2}\n",
    "a: 1\nb: 2\na: 3\n", "x:\n  - {k: 1, k: 2}\n", "{1: a, 1.0: b}\n", "{1: a, true: b}\n", "{null: a, ~: b}\n",
    "? [a, b]\n: c\n", "? {a: 1}\n: c\n", "[{a: 1}: 2]\n",
    "a: 1\n---\nb: 2\n", "--- 1\n--- 2\n", "%YAML 1.1\n---\na: 1\n", "%TAG !e! tag:example.com,2000:\n---\na: 1\n",
    "a: [1, 2\n", "a: 'x\n", "a:\n\tb: 1\n", "a: b: c\n", "- a\nb: 1\n", "{a: 1}}\n", "a: @x\n",
    "[" * 300 + "]" * 300 + "\n", "n: 123456789012345678901234567890\n", "when: 2001-12-14\n",
]


@needs_c
@pytest.mark.parametrize("text", FALLBACK_DOCS, ids=lambda t: repr(t[:30]))
def test_c_leaves_documents_to_pyyaml_and_load_yaml_is_unchanged(tmp_path, monkeypatch, text: str) -> None:
    assert _yamlfast.load(text) is NotImplemented
    path = tmp_path / "site.yaml"
    path.write_text(text)

    def outcome() -> object:
        try:
            return ("data", load_yaml(path, lines=False))
        except Exception as e:  # ConfigError; a map as a key is PyYAML's TypeError, as before
            return (type(e), str(e))

    with_c = outcome()
    monkeypatch.setattr(load, "_fast_load", None)
    without = outcome()
    assert type(with_c[1]) is type(without[1]) and (with_c == without or _same(with_c[1], without[1]))


EXACT_DOCS = ["", "\n", "# only a comment\n", "---\n", "--- \n...\n", "---\na: 1\n...\n", "\ufeffa: 1\n",
              "a:\n", "a:\nb: ~\n", "- \n- ''\n", "{a: [b, {c: [d, {e: f}]}], g: []}\n", "[[[[[]]]]]\n",
              "a: |\n  one\n  two\n", "a: >\n  one\n  two\n\n", "a: \"x\\ty\\u00e9\"\n", "a: 'it''s'\n",
              "a: multi\n  line\n\n  plain\n", "- [1, 1.5, yes, ~, x]\n- {1: 2, 2.5: 3, false: 4, null: 5, '1': 6}\n",
              "k: " + "[" * 150 + "]" * 150 + "\n", "{a: 1, b: 2}\n", "- - - x\n", "? a\n: b\n", "? a\n"]


@needs_c
@pytest.mark.parametrize("text", EXACT_DOCS, ids=repr)
def test_c_builds_documents_as_pyyaml(text: str) -> None:
    assert _check_c(text)


@needs_c
def test_load_yaml_uses_c_and_gives_pyyaml_data(tmp_path, monkeypatch) -> None:
    from bench.bench_gateway import site

    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site(500, 5, 0.5), sort_keys=False))
    calls: list[object] = []
    monkeypatch.setattr(load, "_fast_load", lambda t: calls.append(t) or _yamlfast.load(t))
    fast, _ = load_yaml(path, lines=False)
    assert len(calls) == 1
    monkeypatch.setattr(load, "_fast_load", None)
    slow, _ = load_yaml(path, lines=False)
    assert _same(fast, slow) and len(fast["devices"]) == 5  # type: ignore[index]
