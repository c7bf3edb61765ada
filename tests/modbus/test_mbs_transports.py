"""The framing, fault, conformance, connection and libmodbus suites once more with the server on
asyncio's Transport path (``io="transports"``, what uvloop runs), so both I/O paths of the
server are held to the same tests; on the default loop these suites run the ``readers`` path."""

from __future__ import annotations

import pytest

from devices.modbus import ModbusServer
from devices.modbus.server import _Connection
from tests.modbus.mbs_raw import Raw, req
from tests.modbus.test_mbs_conformance import *  # noqa: F403
from tests.modbus.test_mbs_connections import *  # noqa: F403
from tests.modbus.test_mbs_faults import *  # noqa: F403
from tests.modbus.test_mbs_framing import *  # noqa: F403
from tests.modbus.test_mbs_libmodbus import *  # noqa: F403


@pytest.fixture(autouse=True)
def _transports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ModbusServer, "default_io", "transports")


async def test_these_suites_run_on_transports(server: ModbusServer, raw: Raw) -> None:
    assert await raw.call(req(3, "HH", 0, 1)) == b"\x03\x02\x03\xe8"
    (conn,) = server._conns
    assert type(conn) is _Connection
