"""An emulated IEC 60870-5-104 RTU (controlled station) fed by the firmware, on c104's server.

c104 (lib60870-C) does the APCI (STARTDT/STOPDT, TESTFR, k/w windows, t1–t3), answers station
and counter interrogations from the points' stored information, acknowledges clock sync through
our callback and refuses unknown type/COT/CA/IOA with COT 44–47. This module keeps the points'
information current from the firmware (value, quality descriptor, CP56Time2a), transmits
spontaneously (COT 3) on change beyond the deadband, cyclically (COT 1) where configured, turns
commands into firmware state changes, and counts what it received (bad frames by reason).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Callable

import c104

from devices.iec104.faults import RtuFaults
from devices.iec104.proxy import FaultProxy
from devices.netguard import abort_connections  # plain sockets, no MMS stack
from gateway.protocols.iec104.adapter import (
    TYPE_NAME,
    MalformedApdu,
    apply_parameters,
    c104_type,
    clock_callback,
    command_type,
    command_value,
    connect_callback,
    make_info,
    parse_apdu,
    point_callback,
    raw_callback,
    to_engineering,
    unexpected_callback,
)
from gateway.protocols.iec104.config import Iec104Device, Iec104Point

log = logging.getLogger(__name__)

OnCommand = Callable[[str, "float | int"], bool]


class Iec104Rtu:
    """``start()`` → listening; ``update(point, value, quality, ts)`` from the firmware; ``stop()``."""

    def __init__(self, device: Iec104Device, on_command: OnCommand | None = None) -> None:
        self.cfg = device
        self.on_command = on_command
        self._faults = RtuFaults()
        self.proxy: FaultProxy | None = None  # the public port; c104 listens behind it (faults on the link)
        self.port = device.port or _free_port(device.host)
        # c104 itself only on loopback, whatever the device's host: every connection goes through the proxy
        self._inner_host = "::1" if ":" in device.host else "127.0.0.1"
        self._inner_port = _free_port(self._inner_host)
        self.points = {p.name: p for p in device.points}
        self.counters: dict[str, int] = {
            "i_frames_received": 0, "s_frames_received": 0, "u_frames_received": 0, "spontaneous_sent": 0,
            "commands": 0, "commands_refused": 0, "clock_syncs": 0, "callback_errors": 0,
        }
        self.malformed: dict[str, int] = {}
        self.unexpected: dict[str, int] = {}
        self.received_types: dict[str, int] = {}
        self.clock_offset = 0.0  # set by C_CS_NA_1: controlling station's time - ours
        self._lock = threading.Lock()
        self._sent: dict[str, tuple[Any, int]] = {}  # point → (engineering value, quality) last transmitted
        self._mon: dict[str, Any] = {}
        self._closing = False
        self._listen_hook: Callable[[bool], None] | None = None
        self._build()

    def _build(self) -> None:
        """A fresh c104 server with the site's station and points (c104 2.2.1 can crash when one server
        object is stopped and started again while a client connects, so a restart builds a new one)."""
        device = self.cfg
        self.server = c104.Server(ip=self._inner_host, port=self._inner_port, tick_rate_ms=50,
                                  select_timeout_ms=int(device.iec104.select_timeout * 1000), max_connections=0)
        apply_parameters(self.server.protocol_parameters, device.iec104)
        self.station = self.server.add_station(common_address=device.iec104.common_address)
        self._mon = {}
        for p in device.points:
            mp = self.station.add_point(io_address=p.ioa, type=c104_type(p.type),
                                        report_ms=int(p.cyclic * 1000) if p.cyclic else 0)
            if mp is None:
                raise ValueError(f"{device.name}: c104 refused point {p.name!r} (IOA {p.ioa}, {p.type})")
            self._mon[p.name] = mp
            if p.command is not None and p.command.enabled:
                mode = c104.CommandMode.SELECT_AND_EXECUTE if p.command.mode == "sbo" else c104.CommandMode.DIRECT
                cp = self.station.add_point(io_address=p.command_address(), type=c104_type(command_type(p)), command_mode=mode)
                cp.on_receive(callable=point_callback(self._command_handler(p), self._callback_error))
        self.server.on_receive_raw(callable=raw_callback(self._on_raw, self._callback_error, server=True))
        self.server.on_unexpected_message(callable=unexpected_callback(self._on_unexpected, server=True))
        self.server.on_clock_sync(callable=clock_callback(self._on_clock))
        self.server.on_connect(callable=connect_callback(lambda _ip: not self._closing))

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._closing = False
        self.server.start()
        deadline = time.monotonic() + 5
        while not self.server.is_running and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.is_running:
            raise OSError(f"{self.cfg.name}: the IEC 104 stack could not listen on {self._inner_host}:{self._inner_port}")
        try:
            self.proxy = FaultProxy(self.cfg.host, self.port, (self._inner_host, self._inner_port), self.cfg.name)
        except OSError:
            self._stop_server()
            raise
        self.proxy.faults = self._faults.link
        self.proxy.on_live = self._on_live

    def watch_listeners(self, hook: Callable[[bool], None]) -> bool:
        """``hook(True)`` when a controlling station's connection is about to reach c104 and none did (before
        its first frame: a GI after it sees what the hook stored), ``hook(False)`` when the last one closed;
        returns whether one is connected now. Called on the proxy's threads."""
        self._listen_hook = hook
        return self.proxy is not None and self.proxy.live > 0

    def _on_live(self, on: bool) -> None:
        if self._listen_hook is not None:
            self._listen_hook(on)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        self._stop_server()

    def _stop_server(self) -> None:
        """Refuse new connections, drop the open ones, then stop: c104 2.2.1 can crash in ``Server.stop()``
        while a client is (re)connecting, so stop is only called on a server with no connection left."""
        self._closing = True
        if self.server.is_running:
            deadline = time.monotonic() + 2.0
            while self.server.open_connection_count and time.monotonic() < deadline:
                abort_connections(self._inner_host, self._inner_port)
                time.sleep(0.05)
        self.server.stop()

    @property
    def faults(self) -> RtuFaults:
        return self._faults

    @faults.setter
    def faults(self, new: RtuFaults) -> None:
        """Replaced whole by the fault engine; the link faults go to the proxy at once."""
        old, self._faults = self._faults, new
        if self.proxy is not None:
            self.proxy.faults = new.link
        if new.time_jump_s != old.time_jump_s:
            log.info("%s: clock off by %+g s", self.cfg.name, new.time_jump_s)

    # ------------------------------------------------------------ firmware side

    def update(self, point: str, value: Any, quality: int, timestamp: float) -> None:
        """New firmware value: store it (GI answers with it) and transmit spontaneously if it changed."""
        p = self.points[point]
        mp = self._mon[point]
        try:
            mp.info = make_info(p, value, quality, timestamp + self._faults.time_jump_s)
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"{self.cfg.name}: point {point!r} ({p.type}) cannot carry {value!r}: {e}") from None
        eng = to_engineering(p, mp.value)
        with self._lock:
            prev = self._sent.get(point)
            changed = prev is None or _changed(p, prev, (eng, quality))
            if changed:
                self._sent[point] = (eng, quality)
        if changed and prev is not None and self.server.has_active_connections:
            if mp.transmit(cause=c104.Cot.SPONTANEOUS):
                self.counters["spontaneous_sent"] += 1

    def value(self, point: str) -> Any:
        """The engineering value a controlling station would read now."""
        p = self.points[point]
        return to_engineering(p, self._mon[point].value)

    # ------------------------------------------------------------ c104 callbacks (c104's threads)

    def _command_handler(self, p: Iec104Point) -> Callable[[Any, Any, Any], Any]:
        def handle(point: Any, previous_info: Any, message: Any) -> Any:
            if message.cot != c104.Cot.ACTIVATION:  # c104 hands on commands of any cause; only COT 6 operates
                self._on_unexpected("UNKNOWN_COT", int(message.type.value))
                return c104.ResponseState.NONE
            self.counters["commands"] += 1
            if self.faults.refuse_commands:
                self.counters["commands_refused"] += 1
                return c104.ResponseState.FAILURE
            if message.is_select_command:
                return c104.ResponseState.SUCCESS
            target = command_value(p, point.info, self.value(p.name))
            if target is None:  # e.g. a double command with DCS 0 or 3, a step INVALID_0/3
                self.counters["commands_refused"] += 1
                return c104.ResponseState.FAILURE
            ok = self.on_command(p.name, target) if self.on_command else True
            if not ok:
                self.counters["commands_refused"] += 1
            return c104.ResponseState.SUCCESS if ok else c104.ResponseState.FAILURE

        return handle

    def _on_raw(self, data: bytes) -> None:
        try:
            a = parse_apdu(data)
        except MalformedApdu as e:
            self.malformed[e.reason] = self.malformed.get(e.reason, 0) + 1
            log.warning("%s: malformed APDU received (%s)", self.cfg.name, e)
            return
        self.counters[f"{a.fmt.lower()}_frames_received"] += 1
        if a.fmt == "I":
            name = TYPE_NAME.get(a.type_id, str(a.type_id))
            self.received_types[name] = self.received_types.get(name, 0) + 1

    def _on_unexpected(self, cause: str, type_id: int) -> None:
        self.unexpected[cause] = self.unexpected.get(cause, 0) + 1
        log.info("%s: refused an unexpected ASDU (type %s): %s", self.cfg.name, type_id, cause)

    def _on_clock(self, t: float | None) -> bool:
        self.counters["clock_syncs"] += 1
        if t is not None:
            self.clock_offset = t - time.time()
        return True

    def _callback_error(self, e: BaseException) -> None:
        self.counters["callback_errors"] += 1
        log.error("%s: IEC 104 callback failed: %s", self.cfg.name, e)

    @property
    def stats(self) -> dict[str, Any]:
        link = dict(self.proxy.counters) if self.proxy is not None else {}
        return {**self.counters, "link": link, "malformed": dict(self.malformed), "unexpected": dict(self.unexpected),
                "received_types": dict(self.received_types)}


def _changed(p: Iec104Point, prev: tuple[Any, int], new: tuple[Any, int]) -> bool:
    if prev[1] != new[1]:
        return True
    if isinstance(new[0], (bool, int)) and p.type[2:4] in ("SP", "DP", "ST"):
        return bool(prev[0] != new[0])
    return abs(float(new[0]) - float(prev[0])) > p.deadband or (p.deadband == 0 and new[0] != prev[0])


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
