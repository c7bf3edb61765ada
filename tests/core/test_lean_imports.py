"""`gridgate gateway` on a plain Modbus site imports only what it runs.

Every module a gateway loads stays in its RSS for its whole life (imports were 41 MB of a
10,000-point gateway's memory, issue 18): Sparkplug, the IEC 61850 binding, the emulator and
labs, the sampling core, the courier's crypto and the CIM/HMI tools load only where a site or a
command uses them. Measured on the real entry point, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.mosquitto import free_port
from tests.support.sites import modbus_site

ROOT = Path(__file__).resolve().parents[2]

#: a module is "loaded" if it or any of its submodules is in sys.modules
NOT_LOADED = [
    "gateway.northbound.sparkplug", "gateway.northbound.sparkplug_bridge", "gateway.northbound.spool",
    "gateway.northbound.commands", "gateway.protocols.iec61850.libiec", "gateway.southbound.iec61850",
    "gateway.southbound.dnp3", "gateway.southbound.iec104", "gateway.conduits", "gateway.cgmes", "gateway.hmi",
    "devices", "firmware_sim.firmware", "firmware_sim.backend", "firmware_sim.reference", "cryptography", "rich",
    "pyiec61850", "c104", "dnp3py",
]

RUN = """
import atexit, json, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules)), flush=True))
from gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_gateway_entry_loads_no_optional_stack(tmp_path) -> None:
    _, path = modbus_site(tmp_path)  # Modbus only, no spool, no Sparkplug, no TLS, no commands
    closed = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens: the gateway runs, retries, stops
    r = subprocess.run([sys.executable, "-c", RUN, "gateway", "--config", str(path), "--broker", closed, "--duration", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    line = next((x for x in r.stdout.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    modules = json.loads(line.removeprefix("MODULES "))
    assert "gateway.app" in modules and "gateway.southbound.modbus.driver" in modules  # it did run the gateway
    loaded = {name: [m for m in modules if m == name or m.startswith(name + ".")] for name in NOT_LOADED}
    assert {k: v for k, v in loaded.items() if v} == {}


BEFORE_FORK = """
import json, sys
import gateway.cli, gateway.startup
print(json.dumps(sorted(sys.modules)))
"""


def test_a_first_start_forks_its_loader_before_asyncio_and_the_catalog() -> None:
    # what `gridgate gateway` imports before it forks the loader child of a first start is on the way to the
    # first value (the child then imports pydantic and compiles; the gateway imports the rest meanwhile)
    r = subprocess.run([sys.executable, "-c", BEFORE_FORK], cwd=ROOT, capture_output=True, text=True, timeout=60)
    modules = set(json.loads(r.stdout))
    assert "gateway.startup" in modules
    early = sorted(m for m in modules if m.split(".")[0] in ("asyncio", "pydantic", "yaml", "ssl", "inspect")
                   or m in ("gateway.cim", "gateway.site.tables", "gateway.service", "gateway.shipped"))
    assert early == []
