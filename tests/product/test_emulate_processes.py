"""``gridgate emulate --processes N``: one command, the devices spread over N processes, every
device answering with its own values, and one signal stopping them all."""

from __future__ import annotations

import asyncio
import signal
import struct
import sys
from pathlib import Path

import psutil
import yaml

from tests.modbus.mbs_raw import Raw, req
from tests.support.mosquitto import free_port
from tests.support.wait import poll

ROOT = Path(__file__).resolve().parents[2]
DEVICES = 7


def site(tmp_path: Path) -> tuple[Path, list[int]]:
    ports = [free_port() for _ in range(DEVICES)]
    raw = {
        "site": {"name": "SHARDS"},
        "gateway": {"id": "gw-shards"},
        "substations": [{"name": "SUB", "bays": [{"name": "B", "equipment": [
            {"name": f"L{i}", "type": "EnergyConsumer"} for i in range(DEVICES)]}]}],
        "devices": [
            {"name": f"m{i}", "kind": "meter", "protocol": "modbus", "port": port, "points": [
                {"name": "Ia", "table": "holding", "address": 10, "type": "uint16", "scale": 0.1,
                 "measurement": {"equipment": f"SUB/B/L{i}", "type": "LineCurrent", "phases": "A"},
                 "signal": {"kind": "constant", "value": 10.0 * (i + 1)}}]}
            for i, port in enumerate(ports)],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path, ports


async def register(port: int) -> int | None:
    try:
        c = await Raw.open(port)
    except OSError:
        return None
    try:
        resp = await c.call(req(3, "HH", 10, 1))
        return struct.unpack(">H", resp[2:4])[0] if resp[:2] == bytes((3, 2)) else None
    finally:
        c.writer.close()


async def test_devices_of_every_shard_answer_and_one_sigterm_stops_all(tmp_path):
    path, ports = site(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "emulate", "--config", str(path), "--processes", "3", "--duration", "120",
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        answers: dict[int, int | None] = {}

        async def all_answer() -> bool:
            for p in ports:
                if answers.get(p) is None:
                    answers[p] = await register(p)
            return all(v is not None for v in answers.values()) and len(answers) == DEVICES

        ok = False
        for _ in range(120):  # up to ~60 s on a loaded machine
            if ok := await all_answer():
                break
            await asyncio.sleep(0.5)
        assert ok, answers
        assert [answers[p] for p in ports] == [100 * (i + 1) for i in range(DEVICES)]  # each device its own value
        shards = psutil.Process(proc.pid).children()
        assert len(shards) == 3
        owner = {c.laddr.port: s.pid for s in shards for c in s.net_connections("tcp") if c.status == "LISTEN"}
        assert sorted(owner) == sorted(ports)
        per_shard = sorted(list(owner.values()).count(s.pid) for s in shards)
        assert per_shard == [2, 2, 3]  # round robin over the three processes
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        assert await poll(lambda: not any(s.is_running() and s.status() != psutil.STATUS_ZOMBIE for s in shards), 10)
        err = (await proc.stderr.read()).decode()
        assert "over 3 processes" in err and "no fault API" in err and "Traceback" not in err, err[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_bad_process_counts_are_named(tmp_path):
    path, _ports = site(tmp_path)
    for bad, why in (("0", "--processes '0': give a positive number"), ("x", "or 'auto'")):
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "emulate", "--config", str(path), "--processes", bad,
            cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _out, err = await asyncio.wait_for(p.communicate(), 60)
        assert p.returncode == 2 and why in err.decode(), err
