"""The lab's PID 1: runs inside ``unshare --user --mount --net --pid``, builds the zones
and stays alive until its stdin closes. Because every zone lives inside this process's
private namespaces, its death (clean exit, crash or SIGKILL) removes the whole lab and
nothing is ever created in the host namespace.

Protocol with :class:`devices.netlab.lab.Lab`: one JSON line on stdout,
``{"ready": true, "netem": bool}`` or ``{"error": "..."}``; EOF on stdin means tear down.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from devices.netlab.plan import Plan, Router, build_plan
from devices.netlab.profile import parse_profile


class SetupError(RuntimeError):
    pass


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode:
        raise SetupError(f"`{' '.join(argv)}` failed: {r.stderr.strip() or r.stdout.strip()}")
    return r


def sysctl(zone: str, key: str, value: str) -> None:
    sh("ip", "netns", "exec", zone, "sh", "-c", f"echo {value} > /proc/sys/{key.replace('.', '/')}")


def private_netns_dir() -> None:
    """A tmpfs over /run in our own mount namespace: named netns live and die with us."""
    sh("mount", "-t", "tmpfs", "-o", "mode=755", "gridgate-netlab", "/run")
    os.makedirs("/run/netns", exist_ok=True)


def build_zones(plan: Plan) -> None:
    router_zones = {r.zone for r in plan.routers}
    for z in plan.zones:
        sh("ip", "netns", "add", z)
        sh("ip", "-n", z, "link", "set", "lo", "up")
        sysctl(z, "net.ipv6.conf.all.disable_ipv6", "1")
        sysctl(z, "net.ipv6.conf.default.disable_ipv6", "1")
        # the gateway (and every end zone) never forwards; only router zones do
        sysctl(z, "net.ipv4.ip_forward", "1" if z in router_zones else "0")
    for s in plan.segments:
        ia, ib = s.ifname(s.zone_a), s.ifname(s.zone_b)
        sh("ip", "link", "add", "name", ia, "netns", s.zone_a, "address", s.mac(s.zone_a), "type", "veth",
           "peer", "name", ib, "netns", s.zone_b, "address", s.mac(s.zone_b))
        for z, i in ((s.zone_a, ia), (s.zone_b, ib)):
            sh("ip", "-n", z, "addr", "add", f"{s.addr(z)}/{s.prefixlen}", "dev", i)
            sh("ip", "-n", z, "link", "set", i, "up")
    for z, routes in plan.routes.items():
        for subnet, via in routes:
            sh("ip", "-n", z, "route", "add", subnet, "via", via)
    for z, neighs in plan.neighbours.items():
        for ip, mac, dev in neighs:
            sh("ip", "-n", z, "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent")


def apply_nft(plan: Plan, run_dir: Path) -> None:
    for z, text in plan.nft.items():
        f = run_dir / f"nft-{z}.nft"
        f.write_text(text)
        sh("ip", "netns", "exec", z, "nft", "-f", str(f))


def kernel_has_netem(zone: str) -> bool:
    """Detected once per lab: can this kernel load the netem qdisc?"""
    ok = sh("ip", "netns", "exec", zone, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False).returncode == 0
    if ok:
        sh("ip", "netns", "exec", zone, "tc", "qdisc", "del", "dev", "lo", "root", check=False)
    return ok


def netem_link(r: Router) -> None:
    e = r.emulate
    for dev, rate in ((r.b_side.ifname(r.zone), e.rate_up_kbit), (r.a_side.ifname(r.zone), e.rate_down_kbit)):
        argv = ["ip", "netns", "exec", r.zone, "tc", "qdisc", "add", "dev", dev, "root", "netem",
                "delay", f"{e.delay_ms}ms", f"{e.jitter_ms}ms", "loss", f"{e.loss_pct}%", "limit", str(e.queue_packets)]
        if rate:
            argv += ["rate", f"{rate}kbit"]
        sh(*argv)
    sysctl(r.zone, "net.ipv4.ip_forward", "1")


def start_emulator(r: Router, run_dir: Path) -> subprocess.Popen:
    spec = {
        "emulate": r.emulate.model_dump(), "faults": [f.model_dump() for f in r.faults],
        "dev_a": r.a_side.ifname(r.zone), "dev_b": r.b_side.ifname(r.zone),
        "subnet_a": r.a_side.subnet, "subnet_b": r.b_side.subnet,
    }
    log = open(run_dir / f"linkemu-{r.link.name}.log", "wb")
    p = subprocess.Popen(
        ["ip", "netns", "exec", r.zone, sys.executable, "-m", "devices.netlab.linkemu",
         "--spec", json.dumps(spec), "--socket", str(run_dir / f"link-{r.link.name}.sock")],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    line = p.stdout.readline()  # type: ignore[union-attr]
    msg = json.loads(line) if line.strip() else {"error": f"link emulator for {r.link.name} exited; see {log.name}"}
    if "error" in msg:
        raise SetupError(msg["error"])
    return p


def main() -> None:
    profile_json, run_dir = sys.argv[1], Path(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores signals without a handler
    try:
        profile = parse_profile(json.loads(Path(profile_json).read_text()), profile_json)
        plan = build_plan(profile)
        private_netns_dir()
        build_zones(plan)
        apply_nft(plan, run_dir)
        netem = bool(plan.routers) and kernel_has_netem(plan.routers[0].zone)
        emulators = {}
        for r in plan.routers:
            if netem and not r.faults:
                netem_link(r)
            else:
                emulators[r.link.name] = start_emulator(r, run_dir)
    except (SetupError, OSError, ValueError) as e:
        print(json.dumps({"error": str(e)}), flush=True)
        sys.exit(1)
    print(json.dumps({"ready": True, "netem": netem, "emulated": sorted(emulators)}), flush=True)
    try:
        sys.stdin.read()  # until the Lab closes the pipe or dies
    finally:
        for p in emulators.values():
            p.terminate()
        # also when the owner was SIGKILLed and cannot clean up after us
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
