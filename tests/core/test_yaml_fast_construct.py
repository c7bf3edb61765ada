"""The site loader's one-walk constructor gives exactly what PyYAML's constructor gives (issue 18:
first start of a large site), and the same errors."""

from __future__ import annotations

import math
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
