"""pymodbus (the gateway's client library) as an independent master of the emulated device."""

from __future__ import annotations

import asyncio

from pymodbus.client import AsyncModbusTcpClient

from devices.modbus import ArrayDataModel, ModbusServer


async def test_pymodbus_master_reads_and_writes(server: ModbusServer, model: ArrayDataModel) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
    assert await asyncio.wait_for(client.connect(), 5)
    try:
        rr = await client.read_holding_registers(10, count=3, device_id=1)
        assert rr.registers == [1010, 1011, 1012]
        rr = await client.read_input_registers(0, count=2, device_id=1)
        assert rr.registers == [2000, 2001]
        rr = await client.read_coils(0, count=10, device_id=1)
        assert rr.bits[:10] == [True, False, True, True, False, False, False, True, True, True]
        rr = await client.read_discrete_inputs(0, count=3, device_id=1)
        assert rr.bits[:3] == [False, True, False]
        assert not (await client.write_registers(60, [11, 12], device_id=1)).isError()
        assert not (await client.write_coil(3, False, device_id=1)).isError()
        rr = await client.readwrite_registers(read_address=59, read_count=3, write_address=62, values=[13], device_id=1)
        assert rr.registers == [1059, 11, 12]
        assert model.get_register("holding", 62) == 13 and model.get_bit("coil", 3) is False
        rr = await client.read_holding_registers(199, count=2, device_id=1)
        assert rr.isError() and rr.exception_code == 2
        rr = await client.read_coils(2000, count=6, device_id=1)
        assert rr.isError() and rr.exception_code == 2
    finally:
        client.close()
    assert server.stats.exceptions == {2: 2}
