"""The process's open-file budget: raise the soft limit to what a site needs, or say plainly why not.

Why: every emulated device holds one socket per master connected to it and a listening socket
(devices each on their own 127.x address of one port share one, devices/sharedlisten.py: the
emulator counts the sockets it will really open), and the gateway a client socket per device; a
shell's soft limit is usually 1,024 (systemd's too).
Without this an emulator of 1,500 devices died mid-start: on uvloop with a traceback ("not
started"), on asyncio telling the user to change a port that was free. Like Go's runtime (1.19+),
the soft limit is raised towards the hard one, but only as far as needed: libraries that still use
``select()`` break on descriptors above 1,023, so small sites keep the usual limit."""

from __future__ import annotations

import errno
import resource

#: descriptors a process uses besides its devices' sockets: stdio, the event loop, the spool's
#: files, the MQTT connection, the fault API and metrics listeners, log files, libraries' pipes
BASE = 64


class OpenFilesError(OSError):
    """The hard limit is below what the site cannot start without."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EMFILE, message)

    def __str__(self) -> str:
        return str(self.strerror)


def ensure_open_files(need: int, want: int, what: str, fix: str) -> int:
    """Raise the soft RLIMIT_NOFILE to ``want`` if needed (never past the hard limit); returns the soft limit now.

    ``need``: what ``what`` cannot start without; above the hard limit this raises
    :class:`OpenFilesError`, naming both figures and ``fix``. ``want``: what it uses at full
    strength (e.g. one master per device); the caller warns when the limit returned is below it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = hard if hard != resource.RLIM_INFINITY else max(want, need)
    if need > top:
        raise OpenFilesError(
            f"{what} needs at least {need:,} open files{f', {want:,} at full strength' if want > need else ''}; "
            f"this process may open "
            f"{soft:,} (hard limit {hard:,}). {fix}")
    target = min(max(want, need), top)
    if target <= soft:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def raise_hint(n: int) -> str:
    """The usual ways to give a process ``n`` open files (rounded up to a multiple of 1,024)."""
    n = -(-n // 1024) * 1024
    return f"Raise the limit: `ulimit -n {n}` in the shell (as root: `ulimit -Hn` first), LimitNOFILE={n} in a systemd unit"
