"""Modbus request handling: one request ADU in, one response ADU out.

Written here rather than borrowed from pymodbus' server because the emulated device must
answer malformed requests exactly as the Modbus Application Protocol v1.1b3 (section 6 and
the state diagrams) says — function check (01), then quantity/byte-count/length (03), then
address range (02), then execution (04) — and pymodbus 3.16.1's server gets 8 of 13 raw
probes wrong (fc not echoed in 01, 01 instead of 03, bit tables bounded per word, FC5/FC15
values accepted, second ADU of a segment unanswered; see README.md).

Hot path, kept lean on purpose (bench/bench_modbus_server.py, one request in flight): a
:class:`Responder` per device precomputes a 256-entry table of closures by function code,
each reading its fields with one ``unpack_from`` straight from the connection's receive
buffer and returning the whole response ADU (MBAP header included) as one ``bytes``; the
table sizes are read once. No per-request objects besides that ``bytes``. With the server's
one-ADU path this took a request from ~16 to ~13.5 µs CPU (libmodbus ~10; docs/performance.md).
"""

from __future__ import annotations

import logging
from struct import Struct, pack, unpack_from
from typing import Callable

from devices.modbus.faults import ModbusFaults
from devices.modbus.model import ModbusDataModel
from firmware_sim.modbus import ReadOnlyPoint

log = logging.getLogger(__name__)

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
SERVER_DEVICE_FAILURE = 4

MAX_READ_BITS = 2000
MAX_WRITE_BITS = 1968
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MAX_RW_WRITE_REGISTERS = 121

SUPPORTED = (1, 2, 3, 4, 5, 6, 15, 16, 23)

#: offset of the function code in an ADU (after the 7-byte MBAP header), of its data one further
FC = 7
DATA = 8

_BIT_CHARS = bytes.maketrans(bytes(range(256)), b"0" + b"1" * 255)
_CHAR_BITS = bytes.maketrans(b"01", b"\x00\x01")

#: precompiled formats of the hot path (struct.pack/unpack_from look the format up per call)
_READ_REQUEST = Struct(">H4xBBHH").unpack_from  # tid, unit, fc, start, quantity of FC1-4
_READ_HEAD = Struct(">HHHBBB").pack  # tid, 0, length, unit, fc, byte count

#: answers one request ADU ``buf[i:end]`` (protocol id 0, unit ours) with the response ADU
Handler = Callable[[bytearray, int, int], bytes]


class Illegal(Exception):
    """Raised inside a handler: answer with exception ``code``; ``malformed`` names a broken PDU."""

    def __init__(self, code: int, malformed: str | None = None) -> None:
        self.code = code
        self.malformed = malformed


def pack_bits(bits: bytes) -> bytes:
    """one byte per bit → Modbus bit string (LSB of the first byte is the first bit)"""
    n = len(bits)
    return int(bits.translate(_BIT_CHARS)[::-1], 2).to_bytes((n + 7) // 8, "little")


def unpack_bits(packed: bytes, count: int) -> bytes:
    """Modbus bit string → one byte 0/1 per bit"""
    s = format(int.from_bytes(packed, "little"), f"0{8 * len(packed)}b")[::-1][:count]
    return s.encode().translate(_CHAR_BITS)


def exception_adu(buf: bytearray, i: int, code: int) -> bytes:
    """The exception response to the request ADU at ``buf[i]``: transaction and unit id echoed."""
    tid, unit, fc = unpack_from(">H4xBB", buf, i)
    return pack(">HHHBBB", tid, 0, 3, unit, (fc | 0x80) & 0xFF, code)


class Responder:
    """Answers the request ADUs of one device from its register image.

    ``table[fc](buf, i, end)`` returns the response ADU or raises (:class:`Illegal`, or the
    data model's own error); :meth:`failed` turns that into the exception ADU. Table sizes
    are read from the model once: a register image does not change size while served.
    ``faults`` is kept current by the server (forced exceptions are answered here).
    """

    __slots__ = ("model", "forced", "table", "_sizes")

    def __init__(self, model: ModbusDataModel, faults: ModbusFaults) -> None:
        self.model = model
        #: ``faults.forced`` while exceptions are scripted, else None (one test per request)
        self.forced: Callable[[int, int, int], int | None] | None = None
        self.set_faults(faults)
        self._sizes = {t: model.size(t) for t in ("coil", "discrete_input", "holding", "input")}
        illegal = self._illegal_function
        table: list[Handler] = [illegal] * 256
        table[1] = self._read_bits("coil")
        table[2] = self._read_bits("discrete_input")
        table[3] = self._read_registers("holding")
        table[4] = self._read_registers("input")
        table[5] = self._write_coil()
        table[6] = self._write_register()
        table[15] = self._write_coils()
        table[16] = self._write_registers()
        table[23] = self._read_write_registers()
        self.table = table

    def set_faults(self, faults: ModbusFaults) -> None:
        self.forced = faults.forced if faults.exceptions else None

    def failed(self, buf: bytearray, i: int, e: Exception) -> tuple[bytes, int, str | None]:
        """``(exception ADU, code, malformed reason or None)`` for a handler that raised ``e``."""
        if isinstance(e, Illegal):
            return exception_adu(buf, i, e.code), e.code, e.malformed
        fc = buf[i + FC]
        if isinstance(e, (ReadOnlyPoint, IndexError)):  # the image refuses this address (e.g. a non-commandable point)
            log.info("modbus function %d refused by the data model (%s); answered exception 02", fc, e)
            return exception_adu(buf, i, ILLEGAL_DATA_ADDRESS), ILLEGAL_DATA_ADDRESS, None
        # the image failed: the device reports it, the server keeps serving
        log.warning("modbus function %d failed in the data model (%s: %s); answered exception 04", fc, type(e).__name__, e)
        return exception_adu(buf, i, SERVER_DEVICE_FAILURE), SERVER_DEVICE_FAILURE, None

    # ---- handlers (closures: table name, size and model method are constants in the hot path)

    @staticmethod
    def _illegal_function(buf: bytearray, i: int, end: int) -> bytes:
        raise Illegal(ILLEGAL_FUNCTION)

    def _admit(self, fc: int, size: int, start: int, count: int) -> None:
        """forced exception (fault script), then the address range check"""
        forced = self.forced
        if forced is not None:
            code = forced(fc, start, start + count - 1)
            if code:
                raise Illegal(code)
        if start + count > size:
            raise Illegal(ILLEGAL_DATA_ADDRESS)

    def _read_bits(self, table: str) -> Handler:
        size = self._sizes[table]
        read = self.model.read_bits
        admit = self._admit

        def read_bits(buf: bytearray, i: int, end: int) -> bytes:
            if end - i != 12:
                raise Illegal(ILLEGAL_DATA_VALUE, "pdu_length")
            tid, unit, fc, start, qty = _READ_REQUEST(buf, i)
            if not 1 <= qty <= MAX_READ_BITS:
                raise Illegal(ILLEGAL_DATA_VALUE)
            if self.forced is not None or start + qty > size:
                admit(fc, size, start, qty)
            packed = pack_bits(read(table, start, qty))
            n = len(packed)
            return _READ_HEAD(tid, 0, n + 3, unit, fc, n) + packed

        return read_bits

    def _read_registers(self, table: str) -> Handler:
        size = self._sizes[table]
        read = self.model.read_registers
        admit = self._admit

        def read_registers(buf: bytearray, i: int, end: int) -> bytes:
            if end - i != 12:
                raise Illegal(ILLEGAL_DATA_VALUE, "pdu_length")
            tid, unit, fc, start, qty = _READ_REQUEST(buf, i)
            if not 1 <= qty <= MAX_READ_REGISTERS:
                raise Illegal(ILLEGAL_DATA_VALUE)
            if self.forced is not None or start + qty > size:
                admit(fc, size, start, qty)
            return _READ_HEAD(tid, 0, 2 * qty + 3, unit, fc, 2 * qty) + read(table, start, qty)

        return read_registers

    def _write_coil(self) -> Handler:
        size = self._sizes["coil"]
        model = self.model

        def write_coil(buf: bytearray, i: int, end: int) -> bytes:
            if end - i != 12:
                raise Illegal(ILLEGAL_DATA_VALUE, "pdu_length")
            addr, value = unpack_from(">HH", buf, i + DATA)
            if value not in (0x0000, 0xFF00):
                raise Illegal(ILLEGAL_DATA_VALUE)
            self._admit(5, size, addr, 1)
            model.write_bits(addr, b"\x01" if value else b"\x00")
            return bytes(buf[i:end])  # the echo of the request

        return write_coil

    def _write_register(self) -> Handler:
        size = self._sizes["holding"]
        model = self.model

        def write_register(buf: bytearray, i: int, end: int) -> bytes:
            if end - i != 12:
                raise Illegal(ILLEGAL_DATA_VALUE, "pdu_length")
            (addr,) = unpack_from(">H", buf, i + DATA)
            self._admit(6, size, addr, 1)
            model.write_registers(addr, bytes(buf[i + DATA + 2 : end]))
            return bytes(buf[i:end])  # the echo of the request

        return write_register

    def _write_coils(self) -> Handler:
        size = self._sizes["coil"]
        model = self.model

        def write_coils(buf: bytearray, i: int, end: int) -> bytes:
            d = end - i - DATA  # data bytes after the function code
            if d < 5:
                raise Illegal(ILLEGAL_DATA_VALUE, "pdu_length")
            tid, unit, start, qty, bc = unpack_from(">H4xBxHHB", buf, i)
            if not 1 <= qty <= MAX_WRITE_BITS or bc != (qty + 7) // 8 or d != 5 + bc:
                raise Illegal(ILLEGAL_DATA_VALUE, None if d == 5 + bc else "pdu_length")
            self._admit(15, size, start, qty)
            model.write_bits(start, unpack_bits(bytes(buf[i + DATA + 5 : end]), qty))
            return pack(">HHHBBHH", tid, 0, 6, unit, 15, start, qty)

        return write_coils

    def _write_registers(self) -> Handler:
        size = self._sizes["holding"]
        model = self.model

        def write_registers(buf: bytearray, i: int, end: int) -> bytes:
            d = end - i - DATA
            if d < 5:
                raise Illegal(ILLEGAL_DATA_VALUE, "pdu_length")
            tid, unit, start, qty, bc = unpack_from(">H4xBxHHB", buf, i)
            if not 1 <= qty <= MAX_WRITE_REGISTERS or bc != 2 * qty or d != 5 + bc:
                raise Illegal(ILLEGAL_DATA_VALUE, None if d == 5 + bc else "pdu_length")
            self._admit(16, size, start, qty)
            model.write_registers(start, bytes(buf[i + DATA + 5 : end]))
            return pack(">HHHBBHH", tid, 0, 6, unit, 16, start, qty)

        return write_registers

    def _read_write_registers(self) -> Handler:
        size = self._sizes["holding"]
        model = self.model

        def read_write_registers(buf: bytearray, i: int, end: int) -> bytes:
            d = end - i - DATA
            if d < 9:
                raise Illegal(ILLEGAL_DATA_VALUE, "pdu_length")
            tid, unit, rstart, rqty, wstart, wqty, bc = unpack_from(">H4xBxHHHHB", buf, i)
            if (
                not 1 <= rqty <= MAX_READ_REGISTERS
                or not 1 <= wqty <= MAX_RW_WRITE_REGISTERS
                or bc != 2 * wqty
                or d != 9 + bc
            ):
                raise Illegal(ILLEGAL_DATA_VALUE, None if d == 9 + bc else "pdu_length")
            self._admit(23, size, wstart, wqty)
            self._admit(23, size, rstart, rqty)
            model.write_registers(wstart, bytes(buf[i + DATA + 9 : end]))  # the write happens before the read (spec 6.17)
            data = model.read_registers("holding", rstart, rqty)
            return pack(">HHHBBB", tid, 0, 2 * rqty + 3, unit, 23, 2 * rqty) + data

        return read_write_registers
