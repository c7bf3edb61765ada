"""yadnp3 (opendnp3 fork) as the independent peer (x86_64 only: elsewhere the tests using it skip).

opendnp3 calls back on its own C++ threads; every callback copies what it needs into
plain tuples under a lock and wakes waiters through ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tests.dnp3.sites import device, free_port  # noqa: F401 - re-exported for the peer tests

od = pytest.importorskip("opendnp3", reason="yadnp3, the independent DNP3 peer, has wheels for x86_64 only")


class Collector:
    """Thread-safe list of (kind, index, value, flags, time_ms, is_event) with async waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: list[tuple] = []
        self.lock = threading.Lock()
        self._changed = asyncio.Event()

    def add(self, batch: list[tuple]) -> None:
        with self.lock:
            self.items.extend(batch)
        self.loop.call_soon_threadsafe(self._changed.set)

    def snapshot(self) -> list[tuple]:
        with self.lock:
            return list(self.items)

    async def wait_for(self, pred, timeout: float = 5.0) -> list[tuple]:
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if pred(snap):
                return snap
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"condition not met within {timeout}s; have {len(snap)} items: {snap[-5:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except (TimeoutError, asyncio.TimeoutError):
                pass


_KINDS = [
    (od.Binary, "binary"), (od.DoubleBitBinary, "double_binary"), (od.Analog, "analog"), (od.Counter, "counter"),
    (od.BinaryOutputStatus, "binary_output"), (od.AnalogOutputStatus, "analog_output"),
]


class SOE(od.ISOEHandler):
    def __init__(self, sink: Collector) -> None:
        super().__init__()
        self.sink = sink

    def BeginFragment(self, info):  # noqa: N802
        pass

    def EndFragment(self, info):  # noqa: N802
        pass

    def Process(self, info, values):  # noqa: N802
        ev = bool(info.isEventVariation)
        out = []
        for iv in values:
            m = iv.value
            kind = next((k for t, k in _KINDS if isinstance(m, t)), None)
            if kind is None:
                continue
            v = m.value
            if kind == "double_binary":
                v = int(v.value) if hasattr(v, "value") else int(v)
            out.append((kind, iv.index, v, m.flags.value, m.time.value, ev))
        if out:
            self.sink.add(out)


class MasterApp(od.IMasterApplication):
    def __init__(self) -> None:
        super().__init__()
        self.iin: list[int] = []

    def OnReceiveIIN(self, iin):  # noqa: N802
        pass

    def OnTaskStart(self, type, id):  # noqa: N802, A002
        pass

    def OnTaskComplete(self, info):  # noqa: N802
        pass

    def OnOpen(self):  # noqa: N802
        pass

    def OnClose(self):  # noqa: N802
        pass

    def AssignClassDuringStartup(self):  # noqa: N802
        return False

    def Now(self):  # noqa: N802
        return od.UTCTimestamp(int(time.time() * 1000))


class YMaster:
    """A yadnp3 master on a TCP client channel to 127.0.0.1:port."""

    def __init__(self, port: int, loop: asyncio.AbstractEventLoop, *, local: int = 1, remote: int = 10,
                 unsol: bool = True) -> None:
        self.mgr = od.DNP3Manager(1)
        self.data = Collector(loop)
        self.loop = loop
        self.soe = SOE(self.data)
        self.app = MasterApp()
        retry = od.ChannelRetry(od.TimeDuration.Milliseconds(100), od.TimeDuration.Milliseconds(500))
        self.channel = self.mgr.AddTCPClient("m", od.levels.NOTHING, retry, [od.IPEndpoint("127.0.0.1", port)], "0.0.0.0", None)
        cfg = od.MasterStackConfig()
        cfg.master.disableUnsolOnStartup = True
        cfg.master.responseTimeout = od.TimeDuration.Seconds(2)
        cfg.link.LocalAddr = local
        cfg.link.RemoteAddr = remote
        self.master = self.channel.AddMaster("master", self.soe, self.app, cfg)
        self.master.Enable()

    def scan_classes(self, *classes: int) -> None:
        self.master.ScanClasses(od.ClassField(*[c in classes for c in range(4)]), self.soe)

    async def command(self, fn: str, cmd: Any, index: int, timeout: float = 5.0) -> tuple[Any, list[tuple[int, Any, Any]]]:
        """Run DirectOperate/SelectAndOperate; returns (summary, [(index, state, status)])."""
        fut = self.loop.create_future()

        def done(result):
            pts = [(p.index, p.state, p.status) for p in result.to_list()] if hasattr(result, "to_list") else []
            summary = result.summary
            self.loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result((summary, pts)))

        getattr(self.master, fn)(cmd, index, done)
        return await asyncio.wait_for(fut, timeout)

    def close(self) -> None:
        self.mgr.Shutdown()


class CommandHandler(od.ICommandHandler):
    def __init__(self, sink: list) -> None:
        super().__init__()
        self.sink = sink

    def Begin(self):  # noqa: N802
        pass

    def End(self):  # noqa: N802
        pass

    def Select(self, command, index):  # noqa: N802
        return od.CommandStatus.SUCCESS

    def Operate(self, command, index, handler, opType):  # noqa: N802
        if isinstance(command, od.ControlRelayOutputBlock):
            self.sink.append(("crob", index, int(command.opType.value), int(command.tcc.value)))
        else:
            self.sink.append(("analog", index, command.value))
        return od.CommandStatus.SUCCESS


class OutstationApp(od.IOutstationApplication):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[int] = []

    def SupportsWriteAbsoluteTime(self):  # noqa: N802
        return True

    def WriteAbsoluteTime(self, timestamp):  # noqa: N802
        self.times.append(int(timestamp.msSinceEpoch) if hasattr(timestamp, "msSinceEpoch") else 0)
        return True

    def SupportsAssignClass(self):  # noqa: N802
        return False

    def GetApplicationIIN(self):  # noqa: N802
        return od.ApplicationIIN()

    def ColdRestartSupport(self):  # noqa: N802
        return od.RestartMode.UNSUPPORTED

    def WarmRestartSupport(self):  # noqa: N802
        return od.RestartMode.UNSUPPORTED

    def ColdRestart(self):  # noqa: N802
        return 0

    def WarmRestart(self):  # noqa: N802
        return 0

    def Now(self):  # noqa: N802
        return od.DNPTime(int(time.time() * 1000))


class YOutstation:
    """A yadnp3 outstation serving ``size`` points of every type on 127.0.0.1:port."""

    def __init__(self, port: int, size: int = 10, *, local: int = 10, remote: int = 1, unsol: bool = True) -> None:
        self.mgr = od.DNP3Manager(1)
        self.commands: list = []
        self.cmd = CommandHandler(self.commands)
        self.app = OutstationApp()
        self.channel = self.mgr.AddTCPServer("o", od.levels.NOTHING, od.ServerAcceptMode.CloseExisting,
                                             od.IPEndpoint("127.0.0.1", port), None)
        cfg = od.OutstationStackConfig(od.DatabaseConfig(size))
        cfg.outstation.params.allowUnsolicited = unsol
        cfg.outstation.params.maxTxFragSize = 2048
        cfg.outstation.eventBufferConfig = od.EventBufferConfig.AllTypes(1000)  # the default holds 0 events
        cfg.link.LocalAddr = local
        cfg.link.RemoteAddr = remote
        self.outstation = self.channel.AddOutstation("os", self.cmd, self.app, cfg)
        self.outstation.Enable()

    def apply(self, *updates: tuple[Any, int]) -> None:
        b = od.UpdateBuilder()
        for meas, idx in updates:
            b.Update(meas, idx)
        self.outstation.Apply(b.Build())

    def close(self) -> None:
        self.mgr.Shutdown()
