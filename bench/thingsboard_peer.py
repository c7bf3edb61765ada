"""The peer of bench_gateway.py: ThingsBoard IoT Gateway's Modbus connector on the same emulated devices
and the same Mosquitto (loopback), measured with the same figures as gridgate.

ThingsBoard IoT Gateway runs from its own venv (bench/setup_thingsboard.sh; ``--tb-venv``), with a
config generated here from the bench site: one Modbus slave per emulated device, its points as one
"wide range" time series (TB's request coalescing: one data point per holding register, 16-bit unsigned,
divider 10 = gridgate's scale 0.1, up to 125 registers a request like gridgate's blocks; one request per
point would cost it ~7x), polled at the same interval, reported on every read (``ON_RECEIVED``: gridgate's deadband 0), QoS 0 like gridgate's
analogs, in-memory storage, no remote configuration or statistics. Its MQTT client asks the server for
session limits (an RPC) and sends nothing until answered or 5 s have passed: the subscriber answers
as a ThingsBoard server with no limits would, so its time to first value is not a time-out.
Nothing of ThingsBoard's code is in this repository: only this generated config.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

TELEMETRY = "v1/gateway/telemetry"
RPC_REQUEST = "v1/devices/me/rpc/request/"
RPC_RESPONSE = "v1/devices/me/rpc/response/"
#: what a ThingsBoard CE server without rate limits answers to getSessionLimits
SESSION_LIMITS = {"maxPayloadSize": 65536, "maxInflightMessages": 100, "rateLimits": {}, "gatewayRateLimits": {}}


def write_config(data: dict, broker_port: int, poll: float, out: Path) -> Path:
    """tb_gateway.json, modbus.json and logs.json for the bench site ``data`` in ``out``; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    slaves = []
    for d in data["devices"]:
        addresses = sorted(p["address"] for p in d["points"])
        first, last = addresses[0], addresses[-1]
        if last - first + 1 != len(addresses) or len({p["scale"] for p in d["points"]}) != 1:
            raise SystemExit("--peer thingsboard: the bench site's points must be contiguous holding registers of one scale")
        divider = round(1 / d["points"][0]["scale"])
        slaves.append({
            "host": "127.0.0.1", "port": d["port"], "type": "tcp", "method": "socket", "unitId": 1,
            "deviceName": d["name"], "deviceType": "meter", "timeout": d.get("timeout", 2.0),
            "byteOrder": "BIG", "wordOrder": "BIG", "retries": 0, "retryOnEmpty": False, "retryOnInvalid": False,
            "pollPeriod": int(poll * 1000), "connectAttemptTimeMs": 500, "connectAttemptCount": 5,
            "waitAfterFailedAttemptsMs": 1000, "sendDataOnlyOnChange": False,
            "attributes": [], "attributeUpdates": [], "rpc": [],
            "timeseries": [{"tag": "p${address}", "type": "16uint", "functionCode": 3, "objectsCount": 1,
                            "address": f"{first}-{last}", "maxRegistersPerRequest": 125, "divider": divider}],
        })
    (out / "modbus.json").write_text(json.dumps({"master": {"slaves": slaves}}, indent=1))
    gateway = {
        "thingsboard": {
            "host": "127.0.0.1", "port": broker_port, "remoteShell": False, "remoteConfiguration": False,
            "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600, "customStatsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 8196, "minPackSendDelayMS": 50, "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 3600, "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": "gridgate-bench"},
            "qos": 0,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 1000000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }
    (out / "tb_gateway.json").write_text(json.dumps(gateway, indent=1))
    logs = {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(out / "logs" / "tb.log"),
                              "formatter": "plain", "level": "WARNING"}},
        "root": {"level": "WARNING", "handlers": ["file"]},
    }
    (out / "logs.json").write_text(json.dumps(logs, indent=1))
    return out


class TbCounter:
    """Counts the values (data points) ThingsBoard IoT Gateway publishes, and answers its session-limits RPC."""

    def __init__(self, port: int) -> None:
        import gmqtt

        self.port, self.values, self.first_at, self.rpcs = port, 0, 0.0, 0
        self.client = gmqtt.Client(f"bench-tb-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: [c.subscribe(t, qos=0) for t in (TELEMETRY, RPC_REQUEST + "+")]

    def _on_message(self, client, topic, payload, qos, properties) -> int:
        if topic == TELEMETRY:
            n = sum(len(entry.get("values", ())) for entries in json.loads(payload).values() for entry in entries)
            if n and not self.values:
                self.first_at = time.monotonic()
            self.values += n
        elif topic.startswith(RPC_REQUEST):
            request = json.loads(payload)
            if request.get("method") == "getSessionLimits":
                self.rpcs += 1
                client.publish(RPC_RESPONSE + topic[len(RPC_REQUEST):], json.dumps(SESSION_LIMITS), qos=0)
        return 0

    async def __aenter__(self) -> "TbCounter":
        await self.client.connect("127.0.0.1", self.port)
        await asyncio.sleep(0.2)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()


def log_tail(conf: Path, lines: int = 15) -> str:
    """The end of ThingsBoard IoT Gateway's logs (the bench's temporary folder, with them, is removed on exit)."""
    out = []
    for name in ("stderr.log", "tb.log"):
        p = conf / "logs" / name
        if p.exists():
            out += [f"--- {name}", *p.read_text(errors="replace").splitlines()[-lines:]]
    return "\n".join(out) or "(no log written)"


def tb_python(venv: str) -> str:
    py = Path(venv) / "bin" / "python"
    probe = subprocess.run([str(py), "-c", "import thingsboard_gateway"], capture_output=True) if py.exists() else None
    if probe is None or probe.returncode != 0:
        raise SystemExit(f"--peer thingsboard: no ThingsBoard IoT Gateway in {venv}; run bench/setup_thingsboard.sh {venv}")
    return str(py)


async def measure(data: dict, broker_port: int, emu_pid: int, broker_pid: int, args, tmp: Path,
                  proc_stats: Callable[[int], tuple[float, int]]) -> dict:
    """Start ThingsBoard IoT Gateway on the site, wait for its first value, warm up, measure; the same keys as gridgate's."""
    from bench.bench_gateway import watch  # imported by bench_gateway only: no cycle at import time
    from bench.support import stop

    py = tb_python(args.tb_venv)
    conf = write_config(data, broker_port, args.poll, tmp / "thingsboard")
    env = dict(os.environ, TB_GW_CONFIG_DIR=str(conf) + "/")
    points = sum(len(d["points"]) for d in data["devices"])
    async with TbCounter(broker_port) as sub:
        print(f"peer: ThingsBoard IoT Gateway on the same {points} points; waiting for the first values", file=sys.stderr)
        t_gw = time.monotonic()
        tb = subprocess.Popen([py, "-m", "thingsboard_gateway.tb_gateway"], cwd=conf, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(conf / "logs" / "stderr.log", "wb"))
        try:
            while not sub.values and time.monotonic() < t_gw + 300:
                if tb.poll() is not None:
                    raise SystemExit(f"ThingsBoard IoT Gateway exited with {tb.returncode}:\n{log_tail(conf)}")
                await asyncio.sleep(0.02)
            if not sub.values:
                raise SystemExit(f"ThingsBoard IoT Gateway: no value within 300 s:\n{log_tail(conf)}")
            first_value_s = sub.first_at - t_gw
            rss_first = proc_stats(tb.pid)[1]
            await asyncio.sleep(args.warmup)
            n0, (cpu0, _), (ecpu0, _), (bcpu0, _) = sub.values, proc_stats(tb.pid), proc_stats(emu_pid), proc_stats(broker_pid)
            dt, rss_max = await watch(tb.pid, sub, n0, args.seconds)
            print(file=sys.stderr)
            n1, (cpu1, rss), (ecpu1, _), (bcpu1, _) = sub.values, proc_stats(tb.pid), proc_stats(emu_pid), proc_stats(broker_pid)
        finally:
            stop(tb, grace=20)
    received, cpu_s = n1 - n0, cpu1 - cpu0
    return {
        "subscriber_values_per_s": round(received / dt),
        "points_per_gateway_cpu_s": round(received / cpu_s) if cpu_s > 0 else None,
        "time_to_first_value_s": round(first_value_s, 2),
        "cpu_percent": {"gateway": round(100 * cpu_s / dt, 1), "emulator": round(100 * (ecpu1 - ecpu0) / dt, 1),
                        "mosquitto": round(100 * (bcpu1 - bcpu0) / dt, 1)},
        "gateway_rss_first_value_mib": round(rss_first / 2**20, 1),
        "gateway_rss_mib": round(rss / 2**20, 1),
        "gateway_rss_max_mib": round(rss_max / 2**20, 1),
        "session_limit_requests_answered": sub.rpcs,
    }


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Check the venv of ThingsBoard IoT Gateway that `bench_gateway.py --peer "
                                             "thingsboard` uses (bench/setup_thingsboard.sh makes it); the bench "
                                             "imports this module for the measurement itself.")
    ap.add_argument("--tb-venv", default=os.environ.get("TB_GATEWAY_VENV", "/work/.tbvenv"),
                    help="venv of ThingsBoard IoT Gateway (default: $TB_GATEWAY_VENV or %(default)s)")
    print(f"ThingsBoard IoT Gateway found: {tb_python(ap.parse_args().tb_venv)} -m thingsboard_gateway.tb_gateway")


if __name__ == "__main__":
    main()
