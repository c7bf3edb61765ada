"""Debian libmodbus as an independent master: a small C program compiled here, run against
the emulated device, its printed results asserted on (values and exception errnos)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from devices.modbus import ArrayDataModel, ModbusServer

HERE = Path(__file__).parent
HEADER = Path("/usr/include/modbus/modbus.h")


@pytest.fixture(scope="module")
def client_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found; install build-essential to run the libmodbus interop test")
    if not HEADER.exists():
        pytest.skip("libmodbus-dev is not installed (no /usr/include/modbus/modbus.h); apt-get install libmodbus-dev")
    out = tmp_path_factory.mktemp("libmodbus") / "mbs_client"
    subprocess.run(
        [gcc, "-O1", "-Wall", "-Werror", "-I/usr/include/modbus", str(HERE / "mbs_libmodbus_client.c"), "-o", str(out), "-lmodbus"],
        check=True,
        timeout=60,
        capture_output=True,
    )
    return out


def parse(stdout: str) -> dict[str, dict[str, str]]:
    res: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        key, *fields = line.split()
        res[key] = dict(f.split("=", 1) for f in fields)
    return res


async def test_libmodbus_master_against_emulated_device(client_bin: Path, server: ModbusServer, model: ArrayDataModel) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(client_bin), str(server.port), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, errout = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, errout.decode()
    r = parse(out.decode())

    assert r["read_hr"] == {"rc": "3", "v": "1010,1011,1012"}
    assert r["read_ir"] == {"rc": "1", "v": "2049"}
    assert r["write_hr"]["rc"] == "1" and r["write_hrs"]["rc"] == "3"
    assert r["readback_hr"] == {"rc": "1", "v": "4242"}
    assert r["rw_hr"] == {"rc": "4", "v": "1039,7,8,1042"}
    assert r["write_coil"]["rc"] == "1" and r["write_coils"]["rc"] == "10"
    assert r["read_coils"] == {"rc": "10", "v": "1011010111"}  # coil 5 now set
    assert r["readback_coils"] == {"rc": "10", "v": "1100101011"}
    assert r["read_di"] == {"rc": "11", "v": "01001110001"}
    assert r["read_hr_125"] == {"rc": "125", "last": "1124"}
    assert r["read_coils_2000"] == {"rc": "2000"}

    for key in ("beyond_hr", "beyond_coils", "beyond_coil_write", "beyond_hr_write"):
        assert r[key] == {"rc": "-1", "err": "EMBXILADD"}, key
    assert r["raw_fc7"] == {"rc": "9", "fc": "0x87", "code": "1"}
    assert r["raw_fc5_bad"] == {"rc": "9", "fc": "0x85", "code": "3"}
    assert r["raw_fc3_qty0"] == {"rc": "9", "fc": "0x83", "code": "3"}
    assert r["unit255"] == {"rc": "3", "v": "7,8,9"}

    # the device's own view agrees with the master's
    assert model.get_register("holding", 20) == 4242
    assert [model.get_register("holding", a) for a in (30, 31, 32, 40, 41)] == [7, 8, 9, 7, 8]
    st = server.stats
    assert st.exceptions == {1: 1, 2: 4, 3: 2}
    assert st.requests == st.responses == 21 and st.malformed == {}
