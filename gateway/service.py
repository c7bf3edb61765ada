"""Running as a systemd service: readiness and watchdog notifications, and the unit files.

The notify protocol is one datagram per message to ``$NOTIFY_SOCKET``; the only PyPI client
(sdnotify 0.3.2) is unmaintained since 2017, so these twenty lines are ours. The watchdog ping is
sent from a task on the event loop itself, so a hung loop (a blocking call, a deadlock) stops the
pings and systemd restarts the service after ``WatchdogSec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from typing import AsyncIterator, Callable

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``READY=1``) to systemd; False when not run by systemd (no socket)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)  # never stall the event loop on a reader that is behind
            s.connect(addr)
            s.send(message.encode())
        return True
    except BlockingIOError:
        return False  # the reader's queue is full: this ping is skipped, the next one goes
    except OSError as e:
        log.warning("systemd notify %r failed: %s", message.split("\n", 1)[0], e)
        return False


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec (``$WATCHDOG_USEC``), when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 2e6)
    except ValueError:
        return None


async def ready(status: str) -> asyncio.Task | None:
    """Tell systemd we are up (``READY=1`` with a status line) and start the watchdog pings if asked."""
    notify(f"READY=1\nSTATUS={status}")
    interval = watchdog_interval()
    if interval is None:
        return None

    async def ping() -> None:
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    return asyncio.create_task(ping(), name="systemd-watchdog")


def stopping() -> None:
    notify("STOPPING=1")


@contextlib.asynccontextmanager
async def serving(status: str, metrics: str | None, snapshot: Callable[[], tuple[dict, dict]],
                  source: str = "gateway") -> AsyncIterator[None]:
    """A running command's service duties: the optional Prometheus endpoint, READY and the watchdog;
    on the way out STOPPING, and both stopped."""
    server = None
    if metrics:
        from gateway.metrics import MetricsServer

        server = await MetricsServer(metrics, snapshot, source=source).start()
        print(f"metrics on {server.url}", flush=True)
    watchdog = await ready(status)
    try:
        yield
    finally:
        stopping()
        if watchdog is not None:
            watchdog.cancel()
        if server is not None:
            await server.stop()


# ---------------------------------------------------------------- unit files

UNIT = """\
[Unit]
Description=gridgate {what}
After=network-online.target{after}
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exe} {command} --config {config}{extra} --log-format journal
User={user}
Group={user}
StateDirectory=gridgate
ConfigurationDirectory=gridgate
WorkingDirectory=/var/lib/gridgate
Environment=GRIDGATE_CONFIG_DIR=/etc/gridgate
Restart=on-failure
RestartSec=5
WatchdogSec=30
TimeoutStartSec=60
LimitNOFILE=65536
# hardening: no privileges, read-only system, private /tmp, only the sockets a gateway needs
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
"""


def unit(kind: str, exe: str | None = None, config: str = "/etc/gridgate/site.yaml", user: str = "gridgate",
         broker: str | None = None) -> str:
    """The unit file text of ``gridgate-gateway.service`` or ``gridgate-emulate.service``."""
    exe = exe or os.path.join(os.path.dirname(sys.executable), "gridgate")
    if kind == "gateway":
        extra = f" --broker {broker}" if broker else ""
        return UNIT.format(what="gateway (field devices to CIM over MQTT)", after=" mosquitto.service", exe=exe,
                           command="gateway", config=config, extra=extra, user=user)
    if kind == "emulate":
        return UNIT.format(what="emulated field devices", after="", exe=exe, command="emulate", config=config,
                           extra=" --no-fault-api", user=user)
    raise ValueError(f"unknown unit {kind!r}; use gateway or emulate")
