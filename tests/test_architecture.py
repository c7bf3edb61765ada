"""The layout the architecture promises (docs/architecture.md, docs/adding-a-protocol.md): one registry,
one folder per protocol and layer, the contracts honoured, the import rules kept, and errors inside
each protocol's part of a site file that name the right YAML path and line."""

from __future__ import annotations

import importlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devices.contract import EmulatedDevice, fault_kinds
from gateway.config import Config, ConfigError, load_config
from gateway.protocols import NAMES, protocols, standard_ports
from gateway.southbound.contract import CommandOutcome

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_protocol_has_its_four_folders_and_honours_the_contracts(name: str) -> None:
    spec = protocols()[name]
    assert spec.name == name and spec.title and 0 < spec.standard_port < 65536
    for folder in (f"gateway/protocols/{name}", f"gateway/southbound/{name}", f"devices/{name}", f"tests/{name}"):
        assert (ROOT / folder).is_dir(), f"{folder} is missing (docs/adding-a-protocol.md)"
    assert (ROOT / f"gateway/protocols/{name}/README.md").is_file()
    # the driver: Driver contract, operate (if any) answering with a CommandOutcome
    driver = importlib.import_module(spec.driver_module).Driver
    for member in ("run", "status_counters", "connected"):
        assert hasattr(driver, member), f"{name} driver lacks {member}"
    if hasattr(driver, "operate"):
        ret = inspect.signature(driver.operate).return_annotation
        ret = getattr(sys.modules[driver.__module__], ret) if isinstance(ret, str) and "." not in ret else ret
        if isinstance(ret, type):
            assert issubclass(ret, CommandOutcome), f"{name}: operate must return a CommandOutcome, not {ret}"
    # the emulated device module
    em = importlib.import_module(f"devices.{name}.emulated")
    assert em.FAULT_KINDS and isinstance(em.FAULT_KINDS, frozenset)
    assert isinstance(em.RESTART_ON_DISCONNECT, bool)
    assert inspect.iscoroutinefunction(em.start) and callable(em.apply_faults)


@pytest.mark.parametrize("name", NAMES)
def test_the_sample_site_of_each_protocol_validates(name: str) -> None:
    cfg = load_config(ROOT / f"gateway/protocols/{name}/sample-site.yaml")
    assert {d.protocol for d in cfg.devices} == {name} and all(d.points for d in cfg.devices)


def test_everything_protocol_specific_follows_the_registry() -> None:
    schema = Config.model_json_schema()
    mapping = schema["properties"]["devices"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(NAMES)
    from gateway.cim import Provenance

    assert Provenance.model_json_schema()["properties"]["protocol"]["enum"] == list(NAMES)
    assert set(fault_kinds()) == set(NAMES)
    from devices.netlab.run import STANDARD_PORTS
    from devices.scenario.faults import PROTOCOLS

    assert set(PROTOCOLS) == set(NAMES) and STANDARD_PORTS == standard_ports()
    from devices.netlab.profile import load_profile

    field_rule = next(a for a in load_profile("segmented").allow if a.to == "field")
    assert field_rule.ports == list(dict.fromkeys(standard_ports().values()))


def test_import_rules_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter not installed (pip install -e .[test])")
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_cli_has_every_plugin_command_and_names_a_broken_plugin(monkeypatch, capsys) -> None:
    from importlib.metadata import EntryPoint

    from gateway import cli

    _, commands = cli.build()
    assert {"demo", "emulate", "scenario", "fault", "lab", "courier", "gateway", "validate"} <= set(commands)
    broken = EntryPoint(name="broken", value="devices.no_such_module:register", group=cli.PLUGINS)
    monkeypatch.setattr(cli, "entry_points", lambda group: [broken] if group == cli.PLUGINS else [])
    _, commands = cli.build()
    err = capsys.readouterr().err
    assert "plugin 'broken' failed to load" in err and "devices.no_such_module" in err
    assert "validate" in commands  # the rest of the CLI still works


def test_emulated_devices_of_every_protocol_satisfy_the_device_contract() -> None:
    import asyncio

    from devices.emulator import Emulator
    from devices.scenario.ports import with_free_ports

    async def run() -> None:
        for name in NAMES:
            cfg = with_free_ports(load_config(ROOT / f"gateway/protocols/{name}/sample-site.yaml"))
            async with Emulator(cfg) as emu:
                (rd,) = emu.devices.values()
                assert isinstance(rd.server, EmulatedDevice) and rd.port == cfg.devices[0].port

    asyncio.run(run())


# ---------------------------------------------------------------- error paths inside each protocol's part


def _broken_site(tmp_path: Path, name: str, mutate) -> tuple[Path, str]:  # noqa: ANN001
    text = (ROOT / f"gateway/protocols/{name}/sample-site.yaml").read_text()
    data = yaml.safe_load(text)
    where = mutate(data["devices"][0])
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return path, where


def _bad_address(name: str):  # noqa: ANN202 - a mutation of the device, returning the YAML path it breaks
    key = protocols()[name].address_key

    def mutate(d: dict) -> str:
        d["points"][1][key] = {"not": "an address"}
        return f"devices[0].points[1].{key}"

    return mutate


def _bad_option(name: str):  # noqa: ANN202
    def mutate(d: dict) -> str:
        d.setdefault(name, {})["no_such_option"] = 1  # every protocol's options block is named after it
        return f"devices[0].{name}.no_such_option"

    return mutate


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("make", [_bad_address, _bad_option], ids=["point-address", "device-options"])
def test_an_error_inside_a_protocol_names_its_yaml_path_and_line(tmp_path: Path, name: str, make) -> None:  # noqa: ANN001
    path, where = _broken_site(tmp_path, name, make(name))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    (problem,) = e.value.problems
    assert problem.startswith(f"{where}: "), problem
    key = where.rsplit(".", 1)[1]
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if text.strip().startswith(f"{key}:") and i > _line_of_device(path))
    if where.startswith("devices[0].points[1]"):
        line = _line_in_point(path, 1, key)
    assert problem.endswith(f"(line {line})"), problem


def _line_of_device(path: Path) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("devices:"))


def _line_in_point(path: Path, index: int, key: str) -> int:
    lines = path.read_text().splitlines()
    starts = [i for i, t in enumerate(lines, 1) if t.startswith("  points:")]
    seen = -1
    for i in range(starts[0], len(lines) + 1):
        t = lines[i - 1]
        if t.startswith("  - ") and seen >= 0:
            seen += 1
        elif t.startswith("  - "):
            seen = 0
        if seen == index and t.strip().lstrip("- ").startswith(f"{key}:"):
            return i
    raise AssertionError(f"no {key} in point {index}")


def test_every_northbound_sink_has_the_sink_contract() -> None:
    """The MQTT publisher, the diode sender and the courier writer are interchangeable behind the app."""
    from gateway.conduits.northbound import CourierNorthbound, DiodeNorthbound
    from gateway.northbound.mqtt import MqttPublisher
    from gateway.northbound.sink import Sink

    members = [m for m in ("connected", "stats", "start", "publish", "stop")]
    assert set(members) <= set(dir(Sink))
    publish = inspect.signature(Sink.publish)
    for cls in (MqttPublisher, DiodeNorthbound, CourierNorthbound):
        for m in members:
            assert hasattr(cls, m), f"{cls.__name__} lacks {m}"
        assert inspect.signature(cls.publish).parameters.keys() == publish.parameters.keys(), cls.__name__
        assert inspect.iscoroutinefunction(cls.start) and inspect.iscoroutinefunction(cls.stop)
