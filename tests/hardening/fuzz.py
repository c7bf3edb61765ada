"""Seeded, bounded fuzz cases for the emulated devices' TCP ports (one generator per protocol).

Each case is a list of byte chunks sent on one fresh connection, plus what to do after:
close, reset (RST), or hold the connection open and silent (a careless or hostile master).
The cases mix pure noise with near-valid frames (right framing, random content), which
is what gets past the first length check into the parsers.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from dataclasses import dataclass

from dnp3.core.crc import compute_crc


@dataclass
class Case:
    chunks: list[bytes]
    after: str  # "close" | "reset" | "hold"


def _noise(r: random.Random, lo: int = 1, hi: int = 300) -> bytes:
    return r.randbytes(r.randint(lo, hi))


def modbus_case(r: random.Random) -> bytes:
    k = r.random()
    if k < 0.5:  # right MBAP framing, random function code and data
        pdu = bytes([r.randint(0, 255)]) + _noise(r, 0, 252)
        return struct.pack(">HHHB", r.randint(0, 0xFFFF), 0, len(pdu) + 1, r.choice([1, 0, 255, r.randint(0, 255)])) + pdu
    if k < 0.7:  # lying length fields
        return struct.pack(">HHHB", r.randint(0, 0xFFFF), r.choice([0, 1, 0xFFFF]), r.choice([0, 1, 255, 300, 0xFFFF]), 1) + _noise(r, 0, 40)
    if k < 0.85:  # a valid read request, cut short
        adu = struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, r.randint(0, 200), r.randint(1, 125))
        return adu[: r.randint(1, len(adu) - 1)]
    return _noise(r)


def _dnp3_frame(r: random.Random, dest: int, src: int, data: bytes) -> bytes:
    hdr = bytes([0x05, 0x64, 5 + len(data), r.choice([0xC4, 0xC3, 0xC9, 0x44, r.randint(0, 255)])]) + struct.pack("<HH", dest, src)
    out = hdr + struct.pack("<H", compute_crc(hdr))
    for i in range(0, len(data), 16):
        block = data[i : i + 16]
        out += block + struct.pack("<H", compute_crc(block))
    return out


def dnp3_case(r: random.Random, outstation: int = 10, master: int = 1) -> bytes:
    k = r.random()
    if k < 0.6:  # valid link framing and CRCs; random transport + application bytes
        app = bytes([0xC0 | r.randint(0, 15), r.randint(0, 255)]) + _noise(r, 0, 200)
        data = bytes([0xC0 | r.randint(0, 63)]) + app[:249]
        dest, src = (outstation, master) if r.random() < 0.8 else (r.randint(0, 0xFFFF), r.randint(0, 0xFFFF))
        return _dnp3_frame(r, dest, src, data)
    if k < 0.8:  # a start sequence followed by noise
        return b"\x05\x64" + _noise(r, 0, 100)
    return _noise(r)


def mms_case(r: random.Random) -> bytes:
    k = r.random()
    if k < 0.4:  # TPKT with a random COTP/ISO payload
        body = _noise(r, 0, 400)
        return struct.pack(">BBH", 3, 0, r.choice([len(body) + 4, r.randint(0, 0xFFFF)])) + body
    if k < 0.7:  # a COTP connection request, then a data TPKT of noise
        cr = bytes([0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0, 0, 0, 1, 0, 0xC0, 1, 0x0D, 0xC2, 2, 0, 1, 0xC1, 2, 0, 1])
        body = bytes([0x02, 0xF0, 0x80]) + _noise(r, 0, 300)
        return cr + struct.pack(">BBH", 3, 0, len(body) + 4) + body
    return _noise(r)


GENERATORS = {"modbus": modbus_case, "dnp3": dnp3_case, "iec61850": mms_case}


def cases(protocol: str, seed: int, n: int, hold_share: float = 0.15) -> list[Case]:
    r = random.Random(seed)
    gen = GENERATORS[protocol]
    out = []
    for _ in range(n):
        chunks = [gen(r) for _ in range(r.randint(1, 3))]
        if r.random() < 0.2:  # split one frame across writes
            blob = b"".join(chunks)
            cut = r.randint(0, len(blob))
            chunks = [blob[:cut], blob[cut:]]
        after = "hold" if r.random() < hold_share else r.choice(["close", "close", "reset"])
        out.append(Case(chunks, after))
    return out


async def run_case(port: int, case: Case, held: list[asyncio.StreamWriter], timeout: float = 5.0) -> None:
    """Send one case; keep the writer in ``held`` when the case holds its connection."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for c in case.chunks:
                writer.write(c)
                await writer.drain()
                await asyncio.sleep(0)
    except (OSError, TimeoutError):
        return  # refused, reset or closed by the device: all fine for a fuzz case
    if case.after == "hold":
        held.append(writer)
        return
    if case.after == "reset":
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
