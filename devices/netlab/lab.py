"""Host side of the network lab: ``with Lab("segmented") as lab: lab.popen("field", argv)``.

The whole lab runs inside one ``unshare --user --map-root-user --mount --net --pid``
child (see :mod:`devices.netlab.holder`), so the host network namespace is never
touched and a crash or SIGKILL at any point leaves nothing behind. Programs enter a zone
with ``nsenter`` into that child's user, pid and zone network namespace; the host never
sends a packet towards a lab address.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from devices.netlab.plan import Plan, build_plan
from devices.netlab.profile import Profile, load_profile

REPO = Path(__file__).resolve().parents[2]


class LabUnavailable(RuntimeError):
    """This machine cannot host a lab (missing tool or capability); the message says which."""


class LabError(RuntimeError):
    """The lab could not be built; the message carries the failing step."""


def check_capabilities(needs_tun: bool = False) -> None:
    """Raise LabUnavailable with the reason when namespaces/tools are missing."""
    if needs_tun and not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise LabUnavailable("/dev/net/tun is missing or not accessible: the userspace link emulator needs TUN "
                             "(modprobe tun, or run as root / give the user access to /dev/net/tun)")
    for tool in ("unshare", "nsenter", "ip", "nft"):
        if shutil.which(tool) is None:
            raise LabUnavailable(f"`{tool}` is not installed (apt-get install util-linux iproute2 nftables)")
    err = _namespace_error()
    if err:
        raise LabUnavailable(f"cannot create user+net+mount namespaces: {err} "
                             "(enable kernel.unprivileged_userns_clone or run as root)")


@functools.lru_cache(maxsize=1)
def _namespace_error() -> str:
    """Tried once per process: can we unshare user+net+mount+pid namespaces?"""
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "true"],
                       capture_output=True, text=True)
    return r.stderr.strip() or "unshare failed" if r.returncode else ""


class LinkControl:
    """Runtime control of one emulated link: partition, heal, counters."""

    def __init__(self, name: str, sock: Path) -> None:
        self.name, self.sock = name, sock

    def _call(self, op: str, **kw: Any) -> dict[str, Any]:
        if not self.sock.exists():
            raise LabError(f"link {self.name!r} has no userspace emulator (kernel netem path); "
                           "runtime faults need the userspace path: give the link a faults: entry")
        with socket.socket(socket.AF_UNIX) as s:  # a filesystem socket, not a network address
            s.settimeout(5)
            s.connect(str(self.sock))
            s.sendall(json.dumps({"op": op, **kw}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        resp = json.loads(buf)
        if "error" in resp:
            raise LabError(f"link {self.name}: {resp['error']}")
        return resp

    def partition(self) -> dict[str, Any]:
        return self._call("partition")

    def heal(self) -> dict[str, Any]:
        return self._call("heal")

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def set(self, **impairment: float | None) -> dict[str, Any]:
        """Change delay_ms / jitter_ms / loss_pct / rate_up_kbit / rate_down_kbit while running (both directions)."""
        return self._call("set", **impairment)


class Lab:
    """A running network profile. ``flat`` is a no-op: zones are the host, addresses loopback."""

    def __init__(self, profile: Profile | str = "flat", startup_timeout: float = 30.0) -> None:
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.plan: Plan = build_plan(self.profile)
        self.startup_timeout = startup_timeout
        self.run_dir: Path | None = None
        self.info: dict[str, Any] = {}
        self._unshare: subprocess.Popen | None = None
        self.holder_pid: int | None = None
        self._children: list[subprocess.Popen] = []

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        if self.profile.flat:
            return self
        check_capabilities(needs_tun=bool(self.plan.routers))
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"gg-netlab-{os.getpid()}-"))
        pj = self.run_dir / "profile.json"
        pj.write_text(self.profile.model_dump_json(by_alias=True))
        err = open(self.run_dir / "holder.log", "wb")
        try:
            self._unshare = subprocess.Popen(
                ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child",
                 sys.executable, "-m", "devices.netlab.holder", str(pj), str(self.run_dir)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            self.info = self._await_ready()
            self.holder_pid = self._find_holder()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _await_ready(self) -> dict[str, Any]:
        assert self._unshare and self._unshare.stdout
        ready, _, _ = select.select([self._unshare.stdout], [], [], self.startup_timeout)
        line = self._unshare.stdout.readline() if ready else b""
        if not line:
            log = (self.run_dir / "holder.log").read_text(errors="replace") if self.run_dir else ""  # type: ignore[union-attr]
            raise LabError(f"profile {self.profile.name}: lab did not start within {self.startup_timeout:.0f} s\n{log[-2000:]}")
        msg = json.loads(line)
        if "error" in msg:
            raise LabError(f"profile {self.profile.name}: {msg['error']}")
        return msg

    def _find_holder(self) -> int:
        assert self._unshare
        pid = self._unshare.pid
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(kids) != 1:
            raise LabError(f"expected one holder process under unshare {pid}, found {kids}")
        return int(kids[0])

    def __exit__(self, *exc: object) -> None:
        try:
            for p in self._children:
                if p.poll() is None:
                    p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            self._children.clear()
            if self._unshare is not None:
                try:
                    if self._unshare.stdin:
                        self._unshare.stdin.close()  # EOF: the holder tears the lab down
                    self._unshare.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    self._unshare.kill()  # --kill-child takes the holder (and so the lab) with it
                    self._unshare.wait(5)
        finally:
            self._unshare = None
            if self.run_dir is not None:
                shutil.rmtree(self.run_dir, ignore_errors=True)
                self.run_dir = None

    # -- using zones -----------------------------------------------------------------------
    def zones(self) -> list[str]:
        return list(self.profile.zones)

    def address(self, zone: str, towards: str | None = None) -> str:
        """The address a peer in ``towards`` uses to reach ``zone`` (127.0.0.1 when flat)."""
        if self.profile.flat:
            return "127.0.0.1"
        return self.plan.address(zone, towards)

    def argv_in(self, zone: str, argv: Sequence[str]) -> list[str]:
        if self.profile.flat:
            return list(argv)
        if zone not in self.plan.zones:
            raise KeyError(f"profile {self.profile.name} has no zone {zone!r}; zones: {', '.join(self.plan.zones)}")
        if self.holder_pid is None:
            raise LabError(f"lab {self.profile.name} is not running; use `with Lab(...) as lab:`")
        h = self.holder_pid
        return ["nsenter", f"--user=/proc/{h}/ns/user", f"--net=/proc/{h}/root/run/netns/{zone}",
                f"--pid=/proc/{h}/ns/pid", "--preserve-credentials", "--", *argv]

    def popen(self, zone: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
        """Start a program in ``zone``; it is killed when the lab exits."""
        kw.setdefault("env", {**os.environ, "PYTHONPATH": str(REPO)})
        p = subprocess.Popen(self.argv_in(zone, argv), **kw)
        self._children.append(p)
        return p

    def run_in(self, zone: str, argv: Sequence[str], timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess:
        kw.setdefault("env", {**os.environ, "PYTHONPATH": str(REPO)})
        return subprocess.run(self.argv_in(zone, argv), timeout=timeout, capture_output=True, text=True, **kw)

    def link(self, name: str) -> LinkControl:
        if not any(r.link.name == name for r in self.plan.routers):
            raise KeyError(f"profile {self.profile.name} has no emulated link {name!r}")
        assert self.run_dir
        return LinkControl(name, self.run_dir / f"link-{name}.sock")

    def counters(self, zone: str) -> dict[str, int]:
        """Packets counted by the zone's nftables rules, keyed ``chain/comment`` — e.g.
        ``input/dropped`` is what the zone's default-drop policy discarded."""
        r = self.run_in(zone, ["nft", "-j", "list", "ruleset"], timeout=10)
        if r.returncode:
            raise LabError(f"zone {zone}: nft list failed: {r.stderr.strip()}")
        out: dict[str, int] = {}
        for item in json.loads(r.stdout).get("nftables", []):
            rule = item.get("rule")
            if not rule or "comment" not in rule:
                continue
            for expr in rule["expr"]:
                if "counter" in expr:
                    out[f"{rule['chain']}/{rule['comment']}"] = expr["counter"]["packets"]
        return out

    def netns_path(self, zone: str) -> str:
        """The zone's network namespace file (for setns/nsenter; valid while the lab runs)."""
        self.argv_in(zone, [])  # validates zone and that the lab is running
        return f"/proc/{self.holder_pid}/root/run/netns/{zone}"

    def socket(self, zone: str, port: int, host: str = "0.0.0.0", kind: int = socket.SOCK_STREAM):  # noqa: ANN201
        """A listening (TCP) or bound (UDP) socket in ``zone`` owned by this process (root only);
        on ``flat`` a plain loopback socket."""
        from devices.netlab.nssocket import zone_socket

        if self.profile.flat:
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", port))
            if kind == socket.SOCK_STREAM:
                s.listen(128)
            s.setblocking(False)
            return s
        return zone_socket(self.netns_path(zone), host, port, kind)

    def netns_inodes(self) -> dict[str, int]:
        """Inode of each zone's network namespace (to prove teardown)."""
        return {z: os.stat(f"/proc/{self.holder_pid}/root/run/netns/{z}").st_ino for z in self.plan.zones}

    def nft_file(self, zone: str) -> str:
        return self.plan.nft[zone]
