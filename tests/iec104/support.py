"""Test helpers for IEC 104: a site/device builder and a raw APDU peer (hand-built I/S/U frames over a
plain socket: the independent client of the emulated RTU, no c104 involved)."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from gateway.protocols.iec104.config import Iec104Device
from gateway.runtime import free_port

STARTDT_ACT = bytes.fromhex("680407000000")
STARTDT_CON = bytes.fromhex("68040b000000")


def device(**kw: Any) -> Iec104Device:
    """A 104 RTU with a float, a scaled, a double point (SBE command), a single point (direct command),
    a step position and a counter; ``kw`` overrides device keys."""
    base: dict[str, Any] = {
        "name": "rtu", "kind": "rtu", "protocol": "iec104", "host": "127.0.0.1", "port": kw.pop("port", 0) or free_port(),
        "timeout": 2.0, "iec104": {"common_address": 7},
        "points": [
            {"name": "P", "ioa": 100, "type": "M_ME_TF_1", "measurement": {"equipment": "S1/F1/FDR", "type": "ThreePhaseActivePower"}},
            {"name": "Ia", "ioa": 101, "type": "M_ME_NB_1", "scale": 0.1, "measurement": {"equipment": "S1/F1/FDR", "type": "LineCurrent"}},
            {"name": "Pos", "ioa": 200, "type": "M_DP_TB_1", "command_ioa": 1200,
             "measurement": {"equipment": "S1/F1/CB", "type": "SwitchPosition"}, "command": {"enabled": True, "mode": "sbo"}},
            {"name": "Trip", "ioa": 201, "type": "M_SP_TB_1", "command_ioa": 1201,
             "measurement": {"equipment": "S1/F1/CB", "type": "ProtectionOperate"}, "command": {"enabled": True, "mode": "direct"}},
            {"name": "Tap", "ioa": 300, "type": "M_ST_TB_1", "command_ioa": 1300,
             "measurement": {"equipment": "S1/F1/FDR", "type": "TapPosition"}, "command": {"enabled": True}},
            {"name": "E", "ioa": 400, "type": "M_IT_TB_1", "measurement": {"equipment": "S1/F1/FDR", "type": "ActiveEnergy"}},
        ],
    }
    base.update(kw)
    return Iec104Device.model_validate(base)


def i_frame(ns: int, nr: int, asdu: bytes) -> bytes:
    return bytes([0x68, len(asdu) + 4]) + struct.pack("<HH", ns << 1, nr << 1) + asdu


def s_frame(nr: int) -> bytes:
    return bytes([0x68, 4, 1, 0]) + struct.pack("<H", nr << 1)


def asdu(type_id: int, cot: int, ca: int, ioa: int, element: bytes, oa: int = 0, vsq: int = 1) -> bytes:
    return bytes([type_id, vsq, cot, oa]) + struct.pack("<H", ca) + struct.pack("<I", ioa)[:3] + element


class RawPeer:
    """A controlling station made of bytes: sends frames, reads whole APDUs, keeps N(S)/N(R)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.ns = 0
        self.nr = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_i(self, body: bytes) -> bytes:
        frame = i_frame(self.ns, self.nr, body)
        self.ns += 1
        self.send(frame)
        return frame

    def read(self, timeout: float = 5.0) -> bytes | None:
        """One APDU, or None when nothing arrives within ``timeout``; counts received I-frames."""
        self.sock.settimeout(timeout)
        try:
            head = self._exact(2)
        except TimeoutError:
            return None
        frame = head + self._exact(head[1])
        if frame[2] & 1 == 0:
            self.nr += 1
        return frame

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("the RTU closed the connection")
            out += chunk
        return out

    def read_until(self, pred, timeout: float = 10.0) -> list[bytes]:
        """Every APDU read until one satisfies ``pred`` (included); AssertionError on timeout."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.read(max(0.05, deadline - time.monotonic()))
            if f is None:
                break
            got.append(f)
            if pred(f):
                return got
        raise AssertionError(f"no matching APDU within {timeout} s; got {[g.hex(' ') for g in got]}")

    def startdt(self) -> None:
        self.send(STARTDT_ACT)
        f = self.read()
        assert f == STARTDT_CON, f


def asdu_of(frame: bytes) -> bytes:
    """The ASDU of an I-frame (the APCI's sequence numbers stripped, for byte-for-byte checks)."""
    assert frame[2] & 1 == 0, f"not an I-frame: {frame.hex(' ')}"
    return frame[6:]


def cp56(ts: float) -> bytes:
    """CP56Time2a of ``ts`` (UTC, day of week 0), as c104/lib60870 encode it."""
    import datetime as dt

    t = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    ms = t.second * 1000 + t.microsecond // 1000
    return struct.pack("<H", ms) + bytes([t.minute, t.hour, t.day, t.month, t.year - 2000])
