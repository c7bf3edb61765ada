"""Run gridgate itself inside a network profile: ``gridgate demo|emulate|gateway --profile NAME``.

The lab (:class:`devices.netlab.Lab`) builds the zones; this module places the product in
them: the emulated devices in ``field`` (one lab address each, on the protocol's standard
port the profile allows), the gateway in ``gateway`` with the profile's policy (no inbound
subscriptions in one-way; diode sender or courier writer instead of MQTT), Mosquitto (and
the diode receiver) in ``control``, and the live table or a JSON collector in ``control``.
Everything ends on ``--duration``, Ctrl-C or failure, and the lab is torn down.

Processes inside zones get ``GRIDGATE_LAB_ZONE``/``GRIDGATE_LAB_PROFILE`` in their
environment, so ``run_with_profile`` called *inside* a zone runs the gateway with the
profile's policy instead of building another lab.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from devices.netlab.lab import REPO, Lab, LabError, LabUnavailable
from devices.netlab.profile import Profile, load_profile
from gateway.protocols import standard_ports
from gateway.runtime import LAB_ZONE_ENV, default_config

PY = sys.executable
ENV_ZONE, ENV_PROFILE = LAB_ZONE_ENV, "GRIDGATE_LAB_PROFILE"
ENV_DIODE, ENV_TRANSFER, ENV_KEY = "GRIDGATE_DIODE_TARGET", "GRIDGATE_TRANSFER_DIR", "GRIDGATE_COURIER_KEY_FILE"
#: where each protocol listens in a lab: its standard port, which profiles allow gateway → field
STANDARD_PORTS = standard_ports()
FIRST_HOST = 10  # device addresses in the field subnet start at .10
DIODE_STATUS = "gridgate/diode/status"


class ProfileRunError(RuntimeError):
    """The product cannot run in this profile as configured; the message says why and how to fix it."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- placing devices


def allowed_field_ports(profile: Profile) -> set[int]:
    return {p for a in profile.allow if a.from_ == "gateway" and a.to == "field" and a.proto == "tcp" for p in a.ports}


def place_devices(lab: Lab, cfg: Any) -> tuple[dict, dict[str, tuple[str, int]]]:
    """The config as a dict with each enabled device moved to its own field-zone address and
    its protocol's standard port; and the endpoint of each device."""
    allowed = allowed_field_ports(lab.profile)
    seg = next((s for s in lab.plan.segments if {s.zone_a, s.zone_b} == {"field", "gateway"}), None)
    if seg is None:
        raise ProfileRunError(f"profile {lab.profile.name}: no link between zones field and gateway; "
                              "add `- {name: south, a: field, b: gateway}` under links:")
    import ipaddress

    net = ipaddress.ip_network(seg.subnet)
    data = cfg.model_dump(mode="json", by_alias=True, exclude_unset=True)
    endpoints: dict[str, tuple[str, int]] = {}
    n = 0
    for d in data["devices"]:
        if not d.get("enabled", True):
            continue
        proto = d["protocol"]
        port = STANDARD_PORTS[proto]
        if port not in allowed:
            raise ProfileRunError(f"profile {lab.profile.name}: {proto} device {d['name']} needs tcp port {port} from "
                                  f"gateway to field, but allow: only permits {sorted(allowed) or 'nothing'}; "
                                  f"add {port} to the gateway→field allow rule")
        host = str(net[FIRST_HOST + n])
        n += 1
        if n > net.num_addresses - FIRST_HOST - 2:
            raise ProfileRunError(f"profile {lab.profile.name}: {n} devices do not fit in field subnet {net}")
        d["host"], d["port"] = host, port
        endpoints[d["name"]] = (host, port)
    return data, endpoints


def open_field(lab: Lab, endpoints: dict[str, tuple[str, int]]) -> None:
    """Give the field zone the device addresses and let the gateway reach them on exactly the
    ports the profile allows towards the field (the generated rules name only the zone's
    link address)."""
    seg = next(s for s in lab.plan.segments if {s.zone_a, s.zone_b} == {"field", "gateway"})
    dev, plen = seg.ifname("field"), seg.prefixlen
    hosts = sorted({h for h, _ in endpoints.values()})
    for h in hosts:
        _check(lab.run_in("field", ["ip", "addr", "add", f"{h}/{plen}", "dev", dev], timeout=10), f"field: ip addr add {h}")
    if hosts:
        ports = ", ".join(str(p) for p in sorted(allowed_field_ports(lab.profile)))
        rule = f"ip daddr {{ {', '.join(hosts)} }} tcp dport {{ {ports} }} counter accept comment \"devices\""
        _check(lab.run_in("gateway", ["nft", "insert", "rule", "inet", "gridgate", "output", *rule.split()], timeout=10),
               "gateway: nft rule for device addresses")


def _check(r: subprocess.CompletedProcess, what: str) -> None:
    if r.returncode:
        raise LabError(f"{what} failed: {r.stderr.strip() or r.stdout.strip()}")


# ---------------------------------------------------------------- processes in zones


@dataclass
class Session:
    """One product run in a lab: where things are and the processes started."""

    lab: Lab
    work: Path
    config: Path
    endpoints: dict[str, tuple[str, int]]
    broker_url: str | None = None
    transfer: Path | None = None
    key_file: Path | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def env(self, zone: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), ENV_ZONE: zone, ENV_PROFILE: self.lab.profile.name}
        if self.transfer is not None:
            env[ENV_TRANSFER] = str(self.transfer)
        if self.key_file is not None:
            env[ENV_KEY] = str(self.key_file)
        if self.lab.profile.gateway.northbound == "diode":
            env[ENV_DIODE] = f"{self.lab.address('control', towards='gateway')}:{self.lab.profile.gateway.diode_port}"
        return env

    def start(self, name: str, zone: str, argv: list[str], **kw: Any) -> subprocess.Popen:
        kw.setdefault("stdout", open(self.work / f"{name}.out", "wb"))
        kw.setdefault("stderr", open(self.work / f"{name}.log", "wb"))
        p = self.lab.popen(zone, argv, env=self.env(zone), **kw)
        self.procs[name] = p
        return p

    def log(self, name: str, tail: int = 1500) -> str:
        text = ""
        for ext in ("out", "log"):
            f = self.work / f"{name}.{ext}"
            if f.exists():
                text += f.read_text(errors="replace")
        return text[-tail:]

    def wait_for(self, name: str, what: str, ready: Any, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            p = self.procs[name]
            if p.poll() is not None:
                raise ProfileRunError(f"{name} exited ({p.returncode}) before {what}:\n{self.log(name)}")
            if time.monotonic() > deadline:
                raise ProfileRunError(f"{name}: no {what} within {timeout:.0f} s:\n{self.log(name)}")
            time.sleep(0.05)

    def stop(self, name: str, timeout: float = 10, sig: int = signal.SIGTERM) -> int | None:
        """Ask a process to finish cleanly (its shutdown path publishes the offline status)."""
        p = self.procs.get(name)
        if p is None:
            return None
        if p.poll() is None:
            _signal_inside(p, sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                _say(f"profile: {name} did not stop within {timeout:.0f} s; killing it")
                p.kill()
                p.wait(5)
        return p.returncode

    def listening(self, zone: str, port: int) -> bool:
        return f":{port} " in self.lab.run_in(zone, ["ss", "-Hltn", f"sport = :{port}"], timeout=10).stdout


def _signal_inside(p: subprocess.Popen, sig: int) -> None:
    """Signal the program, not the ``nsenter`` wrapping it: nsenter forks into the lab's PID
    namespace and does not forward signals, so a SIGTERM to it would skip the program's clean
    shutdown (offline status, final stats)."""
    try:
        kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
    except OSError:
        kids = []
    for k in kids or [str(p.pid)]:
        try:
            os.kill(int(k), sig)
        except ProcessLookupError:
            pass


def start_broker(s: Session) -> str:
    from devices.mosquitto import mosquitto_binary  # the one place that knows where mosquitto lives

    binary = mosquitto_binary()
    if binary is None:
        raise ProfileRunError("mosquitto is not installed (apt-get install mosquitto): profiles run a real broker in the control zone")
    port = s.lab.profile.broker_port
    conf = s.work / "mosquitto.conf"
    # user root: inside the lab's user namespace setgroups() is not permitted, so do not drop privileges
    conf.write_text(f"user root\nlistener {port} 0.0.0.0\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
                    "log_type subscribe\nconnection_messages true\n")
    s.start("mosquitto", "control", [binary, "-c", str(conf)])
    s.wait_for("mosquitto", f"listening on port {port}", lambda: s.listening("control", port), timeout=10)
    return f"mqtt://{s.lab.address('control', towards='gateway')}:{port}"


def start_diode_receiver(s: Session) -> None:
    port = s.lab.profile.gateway.diode_port
    ctl = s.lab.address("control", towards="gateway")
    s.key_file = Path(os.environ.get(ENV_KEY) or s.work / "diode.key")  # shared secret of sender and receiver
    if not s.key_file.exists():
        fd = os.open(s.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    s.start("diode-receiver", "control", [PY, "-m", "gateway.conduits.run", "diode-receive", "0.0.0.0", str(port),
                                          "--broker", f"{ctl}:{s.lab.profile.broker_port}", "--grace", "0.5",
                                          "--status-topic", DIODE_STATUS, "--key-file", str(s.key_file)],
            stdin=subprocess.PIPE)
    s.wait_for("diode-receiver", "ready", lambda: "ready" in s.log("diode-receiver"), timeout=10)


def start_emulator(s: Session, seed: int) -> None:
    s.start("emulator", "field", [PY, "-m", "gateway.cli", "emulate", "--config", str(s.config), "--seed", str(seed)])
    s.wait_for("emulator", "devices listening", lambda: "emulating " in s.log("emulator"), timeout=30)


def start_gateway(s: Session) -> None:
    """The product's own ``gridgate gateway``, told by options what the profile allows."""
    policy = s.lab.profile.gateway
    argv = [PY, "-m", "gateway.cli", "gateway", "--config", str(s.config), "--profile", s.lab.profile.name,
            "--northbound", policy.northbound]
    if s.broker_url and policy.northbound == "mqtt":
        argv += ["--broker", s.broker_url]
    if policy.northbound == "diode":
        argv += ["--diode-target", f"{s.lab.address('control', towards='gateway')}:{policy.diode_port}"]
        if s.key_file is not None:
            argv += ["--key-file", str(s.key_file)]  # the MAC key shared with the diode receiver
    if policy.northbound == "courier":
        argv += ["--transfer-dir", str(s.transfer), "--key-file", str(s.key_file)]  # the Ed25519 signing key
    if not (policy.subscribe and policy.accept_commands):
        argv += ["--no-inbound"]
    s.start("gateway", "gateway", argv)
    s.wait_for("gateway", "start", lambda: "measurements →" in s.log("gateway"), timeout=30)


def courier_import(s: Session) -> dict:
    """Carry the transfer directory across the air gap: ``gridgate courier import`` in control."""
    assert s.transfer is not None and s.key_file is not None
    r = s.lab.run_in("control", [PY, "-m", "gateway.cli", "courier", "import", str(s.transfer), "--broker",
                                 f"mqtt://127.0.0.1:{s.lab.profile.broker_port}", "--key-file", str(public_key_of(s.key_file)),
                                 "--state", str(s.work / "import-state.json"), "--json"], timeout=60, env=s.env("control"))
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProfileRunError(f"courier import failed ({r.returncode}): {r.stderr.strip()}") from None


def conduit_key(s: Session) -> Path:
    """The field side's signing key for the courier or the diode (made, with its .pub, if missing)."""
    key = Path(os.environ.get(ENV_KEY) or s.work / "courier.key")
    if not key.exists():
        from gateway.conduits.signing import keygen

        keygen(key, public_key_of(key))
    return key


def public_key_of(private: Path) -> Path:
    """Where the control side's public key lives next to a private key (``courier.key`` → ``courier.pub``);
    written from the private key if missing (a lab convenience: in the field only the .pub crosses the gap)."""
    pub = private.with_suffix(".pub")
    if private.exists() and not pub.exists():
        from cryptography.hazmat.primitives import serialization

        from gateway.conduits.signing import load_signing_key

        pub.write_bytes(load_signing_key(private).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub


def last_json(text: str) -> dict:
    """The last JSON object printed on a line of ``text`` (a process's summary), or {}."""
    for line in reversed(text.splitlines()):
        i = line.find("{")
        if i >= 0:
            try:
                return json.loads(line[i:])
            except ValueError:
                continue
    return {}


# ---------------------------------------------------------------- the command


def run_with_profile(command: str, args: argparse.Namespace, on_ready: Callable[[Session], None] | None = None) -> int:
    """``gridgate demo|emulate|gateway --profile NAME`` (NAME not ``flat``).

    ``on_ready(session)`` runs once everything is up (tests use it to probe the running lab)."""
    from gateway.config import load_config
    from gateway.site.load import ConfigError

    try:
        profile = load_profile(args.profile)
        cfg = load_config(args.config or default_config())
    except (ValueError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if getattr(args, "broker", None):
        _say(f"{command} --profile {profile.name}: ignoring --broker {args.broker}; the profile runs its own broker in the control zone")
    work = Path(tempfile.mkdtemp(prefix=f"gg-profile-{profile.name}-"))
    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        """First Ctrl-C/SIGTERM: shut down cleanly (offline status, summary); second: tear down now."""
        if stop["signal"] is not None:
            raise KeyboardInterrupt
        stop["signal"] = signum
        _say(f"{command} --profile {profile.name}: stopping (again to abort)")

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Lab(profile) as lab:
            return _run_in_lab(command, args, lab, cfg, work, stop, on_ready)
    except KeyboardInterrupt:
        _say(f"{command} --profile {profile.name}: interrupted; lab torn down")
        return 130
    except (ProfileRunError, LabError, LabUnavailable, OSError) as e:
        print(f"error: {command} --profile {profile.name}: {e}", file=sys.stderr)
        return 1
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        if not os.environ.get("GRIDGATE_KEEP_LAB_FILES"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            _say(f"lab files kept in {work}")


def _run_in_lab(command: str, args: argparse.Namespace, lab: Lab, cfg: Any, work: Path, stop: dict[str, int | None],
                on_ready: Callable[[Session], None] | None) -> int:
    profile = lab.profile
    data, endpoints = place_devices(lab, cfg)
    config = work / "site.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    s = Session(lab, work, config, endpoints)
    open_field(lab, endpoints)
    started = time.monotonic()
    seed = getattr(args, "seed", 0)
    quiet = getattr(args, "json", False)
    where = ", ".join(f"{z} {lab.address(z, towards='gateway') if z != 'gateway' else lab.address('gateway')}" for z in lab.zones())
    _say(f"profile {profile.name}: zones {where}; gateway northbound={profile.gateway.northbound} "
         f"subscribe={profile.gateway.subscribe} commands={profile.gateway.accept_commands}")
    if command == "emulate":
        start_emulator(s, seed)
        for name, (h, p) in endpoints.items():
            print(f"{name}: in zone field on {h}:{p}")
        if on_ready is not None:
            on_ready(s)
        _wait(args.duration, stop)
        s.stop("emulator")
        return 0

    nb = profile.gateway.northbound
    if nb in ("mqtt", "diode") or command == "demo":
        start_broker(s)
    if nb == "mqtt":
        s.broker_url = f"mqtt://{lab.address('control', towards='gateway')}:{profile.broker_port}"
    elif nb == "diode":
        start_diode_receiver(s)
    else:
        s.transfer = Path(os.environ.get(ENV_TRANSFER) or work / "transfer")
        s.transfer.mkdir(parents=True, exist_ok=True)
        s.key_file = conduit_key(s)
    start_emulator(s, seed)
    start_gateway(s)
    local = f"mqtt://127.0.0.1:{profile.broker_port}"
    if command == "demo":
        prefix = cfg.gateway.northbound.topic_prefix
        if quiet or getattr(args, "no_live", False) or not sys.stdout.isatty():
            s.start("collector", "control", [PY, "-m", "devices.netlab.run", "collect", "--broker", local, "--prefix", prefix])
        else:
            s.start("collector", "control", [PY, "-m", "gateway.cli", "watch", "--broker", local, "--prefix", prefix],
                    stdout=None, stderr=None)
    imports: list[dict] = []
    end = None if args.duration is None else time.monotonic() + args.duration
    next_import = time.monotonic() + 2
    if on_ready is not None:
        on_ready(s)
    while (end is None or time.monotonic() < end) and stop["signal"] is None:
        time.sleep(0.2)
        if stop["signal"] is not None:
            break  # on Ctrl-C the programs in the zones got SIGINT too and are already stopping
        for name, p in s.procs.items():
            if p.poll() is not None and name != "collector":
                raise ProfileRunError(f"{name} exited ({p.returncode}) while running:\n{s.log(name)}")
        if s.transfer is not None and command == "demo" and time.monotonic() >= next_import:
            imports.append(courier_import(s))
            next_import = time.monotonic() + 2
    rc_gw = s.stop("gateway", timeout=15)
    gw_stats = last_json(s.log("gateway", tail=4000))
    banner = next((l for l in s.log("gateway", tail=10**6).splitlines() if "measurements →" in l), "")
    summary: dict[str, Any] = {"profile": profile.name, "seconds": 0.0, "devices": {n: f"{h}:{p}" for n, (h, p) in endpoints.items()},
                               "gateway_started": banner, "gateway_exit": rc_gw, "gateway": gw_stats}
    if s.transfer is not None:
        if command == "demo":
            imports.append(courier_import(s))
        summary["courier"] = {"transfer_dir": str(s.transfer), "bundles": sorted(p.name for p in s.transfer.glob("*.ggb")),
                              "imported": sum(len(i["imported"]) for i in imports),
                              "records": sum(i["records"] for i in imports),
                              "rejected": [r for i in imports for r in i["rejected"]]}
    if "diode-receiver" in s.procs:
        time.sleep(0.6)  # the final heartbeat accounts for the tail
        rx = s.procs["diode-receiver"]
        assert rx.stdin is not None
        rx.stdin.close()
        try:
            rx.wait(15)
        except subprocess.TimeoutExpired:
            rx.kill()
        summary["diode"] = last_json(s.log("diode-receiver", tail=20000))
    if "collector" in s.procs:
        time.sleep(0.5)
        s.stop("collector", timeout=10)
        seen = last_json(s.log("collector", tail=200000)) if (work / "collector.out").exists() else {}
        summary.update({k: seen[k] for k in ("measurements_seen", "values_received", "quality", "status", "rows") if k in seen})
    s.stop("emulator")
    if "mosquitto" in s.procs:
        s.stop("mosquitto")
        summary["broker_subscriptions"] = _subscriptions(s.log("mosquitto", tail=10**7))
    summary["seconds"] = round(time.monotonic() - started, 1)
    if quiet:
        print(json.dumps(summary, indent=2))
    else:
        summary.pop("rows", None)
        _say(f"{command} --profile {profile.name}: {json.dumps(summary)}")
    # the live table reports nothing back: then the gateway having sent is the criterion
    delivered = summary["values_received"] > 0 if "values_received" in summary else gw_stats.get("sent", 0) > 0
    ok = rc_gw == 0 and (command != "demo" or delivered)
    return 0 if ok else 1


def _subscriptions(log: str) -> dict[str, list[str]]:
    """Client id → topics it subscribed to, from Mosquitto's ``log_type subscribe`` lines
    (``<client> 1 gridgate/v1/+/meas/#``)."""
    out: dict[str, list[str]] = {}
    for line in log.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[-2].isdigit() and not line.startswith("New") and "Received" not in line:
            out.setdefault(parts[-3], []).append(parts[-1])
    return out


def _wait(duration: float | None, stop: dict[str, int | None]) -> None:
    end = None if duration is None else time.monotonic() + duration
    while (end is None or time.monotonic() < end) and stop["signal"] is None:
        time.sleep(0.2)


# ---------------------------------------------------------------- inside a zone


async def _collect(broker: str, prefix: str) -> dict:
    """Subscribe until SIGTERM/SIGINT; summarise what arrived (for ``demo --json``)."""
    from gateway.watch import Watcher

    w = Watcher(broker, prefix)
    await w.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print("ready", flush=True)
    await done.wait()
    await w.stop()
    st = w.state
    quality: dict[str, int] = {}
    for row in st.rows.values():
        quality[row.validity] = quality.get(row.validity, 0) + 1
    return {"measurements_seen": len(st.rows), "values_received": st.received, "quality": quality,
            "status": {k: v.get("state") for k, v in st.status.items()},
            "rows": {t: {"value": r.value, "validity": r.validity, "ts": r.ts, "received": r.received} for t, r in st.rows.items()}}


def main(argv: list[str] | None = None) -> int:
    """``collect``: the recorder inside the control zone (subscribes, prints one JSON summary on SIGTERM)."""
    ap = argparse.ArgumentParser(prog="python -m devices.netlab.run")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--broker", required=True)
    c.add_argument("--prefix", default="gridgate/v1")
    a = ap.parse_args(argv)
    print(json.dumps(asyncio.run(_collect(a.broker, a.prefix))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
