"""A large site's first start in two processes (issue 18: first value ≤ 1 s): the text cut
(gateway/site/yamlsplit.py) gives exactly the file's data, and the joined compile
(gateway/splitcompile.py), of the text's halves or of the parsed data's, gives exactly the one-process
compile, or falls back to it, so a bad file gets the same errors as before."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from gateway.site import load as site_load
from gateway.site.errors import ConfigError
from gateway.site.load import _construct_tree, _LineLoader, read_data
from gateway.site.tables import Runtime
from gateway.site.yamlsplit import confirms, split_devices
from gateway.splitcompile import _middle, compile_split, compile_split_data
from gateway.startup import _unpack, compile_site

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import site  # noqa: E402

SHIPPED = sorted(p for p in (ROOT / "configs").rglob("*.yaml")) + sorted((ROOT / "gateway/protocols").glob("*/sample-site.yaml"))


def _parse(text: str) -> tuple[object, object]:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        return node, _construct_tree(loader, node)
    finally:
        loader.dispose()


def _joined(text: str) -> object | None:
    """The data of both parts joined, None if the text is not cut or a part is not confirmed."""
    parts = split_devices(text)
    if parts is None:
        return None
    out = []
    for part in parts:
        assert part.text.count("\n") == text.count("\n")  # lines stay where they are in the file
        try:
            node, data = _parse(part.text)
        except yaml.YAMLError:
            return None
        if not confirms(node, part):
            return None
        out.append(data)
    one, two = out
    assert {k: v for k, v in one.items() if k != "devices"} == {k: v for k, v in two.items() if k != "devices"}
    return {**one, "devices": one["devices"] + two["devices"]}


def _plain(v: object) -> object:
    """Runtime twins as (model, values) tuples, to compare two decoded sites value by value."""
    if isinstance(v, Runtime):
        return type(v).model, tuple(_plain(getattr(v, f)) for f in v.fields)
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return type(v), v


def _dump(points: int, devices: int, **kw: object) -> str:
    return yaml.safe_dump(site(points, devices, 1.0), sort_keys=False, **kw)


@pytest.mark.parametrize("indent", [None, 4])
def test_a_generated_site_cut_in_two_is_the_whole_file(indent: int | None) -> None:
    text = _dump(300, 7, indent=indent) if indent else _dump(300, 7)
    full = yaml.safe_load(text)
    joined = _joined(text)
    assert joined == full and list(joined) == list(full)  # type: ignore[arg-type]
    one, two = split_devices(text)  # type: ignore[misc]
    n1 = len(_parse(one.text)[1]["devices"])  # type: ignore[index]
    assert 2 <= n1 <= 5 and n1 + len(_parse(two.text)[1]["devices"]) == 7  # type: ignore[index]


def test_keys_after_the_list_and_comments_inside_it_stay_where_they_are() -> None:
    data = site(60, 4, 1.0)
    devices = data.pop("devices")
    text = "# a site\n" + yaml.safe_dump({"site": data["site"]}) + "devices:\n# the meters\n" + \
        yaml.safe_dump(devices, sort_keys=False).replace("\n- name: m2\n", "\n# second half\n- name: m2\n") + \
        yaml.safe_dump({k: v for k, v in data.items() if k != "site"}, sort_keys=False)
    full = yaml.safe_load(text)
    assert list(full)[-1] == "substations"
    assert _joined(text) == full


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_files_are_cut_exactly_or_not_at_all(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    joined = _joined(text)
    if joined is not None:
        assert joined == yaml.safe_load(text)


TRICKY = [
    # a quoted string that runs over the cut: a part fails to parse, or its list does not end before the blanked lines
    'site: {{name: S}}\ndevices:\n- name: a\n  description: "one\n- name: b\n  two"\n- name: c\n{tail}',
    "site: {{name: S}}\ndevices:\n- name: a\n  description: 'one\n- name: b\n  two'\n- name: c\n{tail}",
    # a flow list over the cut
    "site: {{name: S}}\ndevices:\n- name: a\n  groups: [x,\n- y]\n- name: c\n{tail}",
    # a block scalar at the end of a device (its end mark is past the blanked lines: parsed whole)
    "site: {{name: S}}\ndevices:\n- name: a\n  description: |\n    text\n- name: b\n- name: c\n{tail}",
    # two devices keys, a flow list, nothing after the key
    "site: {{name: S}}\ndevices:\n- name: a\n- name: b\ndevices:\n- name: c\n{tail}",
    "site: {{name: S}}\ndevices: [{{name: a}}, {{name: b}}]\n{tail}",
    "site: {{name: S}}\ndevices:\n{tail}",
    "devices:\n  - name: a\n  - name: b\n  - name: c\n{tail}",
    "devices:\n-\n  name: a\n-\n  name: b\n- name: c\n{tail}",
]


@pytest.mark.parametrize("tail", ["", 'plant: "x"\n', "other: x]\n", "z: 1\n"])
@pytest.mark.parametrize("template", TRICKY)
def test_a_cut_that_changes_the_data_is_never_used(template: str, tail: str) -> None:
    text = template.format(tail=tail)
    try:
        full = yaml.safe_load(text)
    except yaml.YAMLError:
        full = "error"
    joined = _joined(text)
    assert joined is None or joined == full


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("split") / "site.yaml"
    p.write_text(_dump(2000, 6), encoding="utf-8")
    return p


def test_two_processes_compile_exactly_what_one_does(big: Path) -> None:
    blob = compile_split(big)
    assert blob is not None
    split, whole = _unpack(memoryview(blob), "child"), _unpack(memoryview(compile_site(big, False)), "process")
    assert _plain(split.cfg) == _plain(whole.cfg)
    assert list(split.catalog) == list(whole.catalog) and split.catalog == whole.catalog
    assert len(split.catalog) == 6 * (2000 // 6) and [d.name for d in split.cfg.devices] == [f"m{i}" for i in range(6)]
    assert _unpack(memoryview(compile_site(big, True, parallel=True)), "child").catalog == whole.catalog


def test_two_processes_from_the_parsed_data_compile_exactly_what_one_does(big: Path) -> None:
    data = read_data(big)
    before = repr(data)
    blob = compile_split_data(data)
    assert blob is not None
    assert repr(data) == before  # the halves are new dicts: the data is not changed
    split, whole = _unpack(memoryview(blob), "child"), _unpack(memoryview(compile_site(big, False)), "process")
    assert _plain(split.cfg) == _plain(whole.cfg)
    assert list(split.catalog) == list(whole.catalog) and split.catalog == whole.catalog
    assert len(split.catalog) == 6 * (2000 // 6) and [d.name for d in split.cfg.devices] == [f"m{i}" for i in range(6)]


def test_a_first_start_with_the_c_builder_halves_the_parsed_data(big: Path, monkeypatch) -> None:
    from gateway import splitcompile

    if not site_load.whole_file_is_faster():
        pytest.skip("the C YAML builder is not built here")
    monkeypatch.setenv(splitcompile.PROCESSES_ENV, "2")
    monkeypatch.setattr(splitcompile, "compile_split", lambda path: pytest.fail("the text was cut"))
    halved: list[int] = []
    real = splitcompile.compile_split_data
    monkeypatch.setattr(splitcompile, "compile_split_data", lambda data: halved.append(len(data["devices"])) or real(data))
    blob = compile_site(big, False, parallel=True)
    assert halved == [6]
    assert _unpack(memoryview(blob), "child").catalog == _unpack(memoryview(compile_site(big, False)), "process").catalog


@pytest.mark.parametrize(("sizes", "cut"), [
    ([10] * 10, 5), ([50, 10, 10, 10, 20], 1), ([1, 1, 1, 97], 3), ([97, 1, 1, 1], 1), ([3, 4], 1),
    ([5, 5, 5], 1), ([1, 6, 1, 1, 1], 2), ([None, None, None, None], 2),
])
def test_the_data_is_cut_where_each_half_has_about_half_the_points(sizes: list, cut: int) -> None:
    devices = [{"name": f"d{i}", "points": [{}] * n} if n is not None else "not a device" for i, n in enumerate(sizes)]
    assert _middle(devices) == cut


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("split") / "site.yaml"
    p.write_text(_dump(300, 6), encoding="utf-8")
    return p


def _edited(site: Path, tmp_path: Path, old: str, new: str, last: bool = False) -> Path:
    text = site.read_text(encoding="utf-8")
    assert old in text
    before, _, after = text.rpartition(old) if last else text.partition(old)
    p = tmp_path / "edited.yaml"
    p.write_text(before + new + after, encoding="utf-8")
    return p


def _errors(path: Path, parallel: bool) -> list[str]:
    with pytest.raises(ConfigError) as e:
        compile_site(path, False, parallel=parallel)
    return e.value.problems if hasattr(e.value, "problems") else [str(e.value)]


BAD = ["device name in both halves", "port in both halves", "mRID in both halves", "error in the second half",
       "YAML error in the first half", "duplicate key"]


def _bad(big: Path, tmp_path: Path, case: str) -> Path:
    text = big.read_text(encoding="utf-8")
    port = yaml.safe_load(text)["devices"][0]["port"]
    if case == "device name in both halves":
        return _edited(big, tmp_path, "name: m5\n", "name: m0\n")
    if case == "port in both halves":
        port5 = yaml.safe_load(text)["devices"][5]["port"]
        return _edited(big, tmp_path, f"port: {port5}\n", f"port: {port}\n")
    if case == "mRID in both halves":
        p = tmp_path / "edited.yaml"
        mrid = "mrid: 00000000-0000-4000-8000-000000000001\n"
        lines = text.split("\n")
        firsts = [i for i, line in enumerate(lines) if line == "    measurement:"]
        for i in (firsts[0], firsts[-1]):
            lines[i] += "\n      " + mrid.rstrip("\n")
        p.write_text("\n".join(lines), encoding="utf-8")
        return p
    if case == "error in the second half":
        return _edited(big, tmp_path, "address: 10\n", "address: 70000\n", last=True)
    if case == "YAML error in the first half":
        return _edited(big, tmp_path, "name: m1\n", "name: [m1\n")
    return _edited(big, tmp_path, "    type: uint16\n", "    type: uint16\n    type: int16\n", last=True)


@pytest.mark.parametrize("case", BAD)
def test_a_bad_file_gets_the_errors_of_the_one_process_compile(small: Path, tmp_path: Path, case: str, monkeypatch) -> None:
    from gateway import splitcompile

    p = _bad(small, tmp_path, case)
    assert compile_split(p) is None
    monkeypatch.setattr(site_load, "_fast_load", None)  # the text halved
    monkeypatch.setenv(splitcompile.PROCESSES_ENV, "2")
    errors = _errors(p, True)
    assert errors == _errors(p, False) and errors


@pytest.mark.parametrize("case", BAD)
def test_a_bad_file_gets_the_errors_of_the_one_process_compile_with_the_data_halved(small: Path, tmp_path: Path,
                                                                                   case: str, monkeypatch) -> None:
    from gateway import splitcompile

    if not site_load.whole_file_is_faster():
        pytest.skip("the C YAML builder is not built here")
    p = _bad(small, tmp_path, case)
    if case.startswith("YAML") or case == "duplicate key":  # the whole file is parsed before it is halved
        with pytest.raises(ConfigError):
            read_data(p)
    else:
        assert compile_split_data(read_data(p)) is None
    monkeypatch.setenv(splitcompile.PROCESSES_ENV, "2")
    errors = _errors(p, True)
    monkeypatch.setenv(splitcompile.PROCESSES_ENV, "1")
    assert errors == _errors(p, False) == _errors(p, True) and errors


@pytest.mark.parametrize("c_builder", [True, False])
def test_two_processes_only_where_a_second_core_is_idle(monkeypatch, c_builder: bool) -> None:
    from gateway import splitcompile

    # the same rule with the C YAML builder (the parsed data is halved) and without it (the text is halved)
    monkeypatch.setattr(site_load, "_fast_load", (lambda text: NotImplemented) if c_builder else None)
    monkeypatch.delenv(splitcompile.PROCESSES_ENV, raising=False)
    monkeypatch.setattr(splitcompile.os, "sched_getaffinity", lambda pid: {0, 1})
    for load, split in ((0.2, True), (0.9, True), (1.0, False), (6.0, False)):
        monkeypatch.setattr(splitcompile.os, "getloadavg", lambda load=load: (load, load, load))
        assert splitcompile.worth_splitting() is split, load
    monkeypatch.setattr(splitcompile.os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(splitcompile.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert splitcompile.worth_splitting() is False


@pytest.mark.parametrize("c_builder", [True, False])
def test_the_number_of_processes_can_be_forced(monkeypatch, caplog, c_builder: bool) -> None:
    from gateway import splitcompile

    monkeypatch.setattr(site_load, "_fast_load", (lambda text: NotImplemented) if c_builder else None)
    monkeypatch.setattr(splitcompile.os, "sched_getaffinity", lambda pid: {0, 1})
    for load in (0.2, 6.0):
        monkeypatch.setattr(splitcompile.os, "getloadavg", lambda load=load: (load, load, load))
        monkeypatch.setenv(splitcompile.PROCESSES_ENV, "1")
        assert splitcompile.worth_splitting() is False
        monkeypatch.setenv(splitcompile.PROCESSES_ENV, "2")
        assert splitcompile.worth_splitting() is True
        monkeypatch.setenv(splitcompile.PROCESSES_ENV, "Auto")
        assert splitcompile.worth_splitting() is (load < 1)
        monkeypatch.setenv(splitcompile.PROCESSES_ENV, "three")
        with caplog.at_level("WARNING", logger="gateway.splitcompile"):
            assert splitcompile.worth_splitting() is (load < 1)  # the rule, and said
        assert "expected 1, 2 or auto" in caplog.text
    monkeypatch.setattr(splitcompile.os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setenv(splitcompile.PROCESSES_ENV, "2")
    assert splitcompile.worth_splitting() is False  # one core: never two processes

@pytest.mark.parametrize("parts", [3, 5, 40])
@pytest.mark.parametrize("bare", [False, True])
def test_a_site_cut_in_many_parts_is_the_whole_file(parts: int, bare: bool) -> None:
    """The emulator's loader (gateway/chunkload.py) cuts the list in parts of ~2 MB; ``bare`` parts hold only
    their devices (the rest of the file is validated once, from the first part)."""
    data = site(90, 30, 1.0)
    text = yaml.safe_dump(data, sort_keys=False).replace("\ndevices:\n", "\ndevices:  # meters\n# the first\n\n")
    text += "z_after_the_list: 1\n"
    full = yaml.safe_load(text)
    cut = split_devices(text, parts, bare=bare)
    assert cut is not None and len(cut) == min(parts, 30)
    devices: list = []
    for k, part in enumerate(cut):
        node, got = _parse(part.text)
        assert confirms(node, part)
        if k and bare:
            assert list(got) == ["devices"]  # type: ignore[arg-type]
        else:
            assert part.text.count("\n") == text.count("\n")
            assert {k: v for k, v in got.items() if k != "devices"} == {k: v for k, v in full.items() if k != "devices"}  # type: ignore[union-attr]
        devices += got["devices"]  # type: ignore[index]
    assert devices == full["devices"]
    assert split_devices(text, 2) == split_devices(text)  # the gateway's two halves are unchanged


@pytest.mark.parametrize("template", TRICKY)
def test_a_cut_in_many_parts_that_changes_the_data_is_never_used(template: str) -> None:
    text = template.format(tail="z: 1\n")
    try:
        full = yaml.safe_load(text)
    except yaml.YAMLError:
        full = "error"
    cut = split_devices(text, 3, bare=True)
    if cut is None:
        return
    devices: list = []
    for part in cut:
        try:
            node, got = _parse(part.text)
        except yaml.YAMLError:
            return
        if not confirms(node, part):
            return
        devices += got["devices"]  # type: ignore[index]
    assert devices == full["devices"]  # type: ignore[index]
