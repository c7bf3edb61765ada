"""A full spool disk is a reported, survived state (issue 14): the real Spool + MqttPublisher
on a 1 MB tmpfs in a private mount namespace (unshare), filled by the actor, against Mosquitto."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


def _unshare_reason() -> str | None:
    try:
        r = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare not usable: {exc}"
    return f"unshare --user --mount refused: {r.stderr.decode().strip()}" if r.returncode else None


pytestmark = pytest.mark.skipif(_unshare_reason() is not None, reason=str(_unshare_reason()))


def _received(sub: RawSubscriber) -> set[int]:
    return {json.loads(m.payload)["n"] for m in sub.messages}


async def test_full_disk_is_reported_survived_and_accounting_stays_true(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    broker = Mosquitto(persistence=True, extra="queue_qos0_messages true\nmax_queued_messages 0\n").start()
    sub = None
    proc = None
    try:
        sub = await RawSubscriber(broker.port, ["gg/diskfull/#"], client_id="room", clean=False).__aenter__()
        script = (f"mount -t tmpfs -o size=1m tmpfs {mnt} && cd {ROOT} && "
                  f"exec {sys.executable} -m tests.hardening.diskfull_actor {broker.port} {mnt}")
        proc = await asyncio.create_subprocess_exec(*UNSHARE, "sh", "-c", script, stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        async def phase(name: str) -> dict:
            line = await asyncio.wait_for(proc.stdout.readline(), 90)
            assert line, f"actor ended before phase {name}: {(await proc.stderr.read()).decode()[-3000:]}"
            out = json.loads(line)
            assert out["phase"] == name, out
            return out

        async def go() -> None:
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()

        a = await phase("A")
        assert a["drained"] and a["state"] == "ok" and a["write_failures"] == 0
        # the actor goes on to phase B at once: its values may already be arriving, so look for A's 100, not a count
        assert await sub.wait_for(lambda m: set(range(1, 101)) <= _received(sub), 20), sorted(set(range(1, 101)) - _received(sub))[:20]

        b = await phase("B")  # disk full, broker up: every value still goes out, live
        assert b["filler"] > 0 and "unwritable" in b["seen_states"] and b["write_failures"] >= 1, b
        assert b["drained"] and b["connected"] and b["dropped"] == {}
        assert b["held_in_memory"] <= 100, b  # delivered values are forgotten, not kept until the disk recovers
        # (SQLite may squeeze a small commit into a partly used page now and then: the state can flip back)
        assert "full" in b["last_write_error"], b
        assert await sub.wait_for(lambda m: len(_received(sub)) == 2400, 20), sorted(set(range(1, 2401)) - _received(sub))[:20]

        await sub.__aexit__(None, None, None)
        broker.stop()  # saves the subscriber's session; the values published meanwhile queue there
        await go()
        c = await phase("C")  # disk full, broker down: 200 kept in memory, the rest dropped analog first
        dropped = {k: v for k, v in c["dropped"].items() if k.startswith("spool_unwritable_")}
        assert c["state"] == "unwritable" and not c["connected"]
        assert dropped.get("spool_unwritable_analog", 0) >= 150 and "spool_unwritable_event" not in dropped, c
        lost = sum(dropped.values())
        broker.start()
        sub = await RawSubscriber(broker.port, ["gg/diskfull/#"], client_id="room", clean=False).__aenter__()
        await go()
        c2 = await phase("C2")
        assert c2["drained"] and c2["connected"]
        got = _received(sub)
        assert await sub.wait_for(lambda m: len(_received(sub)) == 400 - lost, 20), (len(_received(sub)), lost)
        got = _received(sub)
        assert got <= set(range(2401, 2801)) and {n for n in range(2401, 2801) if n % 5 == 0} <= got  # every event kept

        d = await phase("D")  # space is back: the next retry succeeds, spooling resumes
        assert d["state"] == "ok" and d["recovery_s"] < 5 and d["drained"], d
        assert await sub.wait_for(lambda m: set(range(2801, 2901)) <= _received(sub), 20)

        await sub.__aexit__(None, None, None)
        sub = None
        broker.stop()
        await go()
        e = await phase("E")  # a backlog written to the file: what the spool believes is what the file holds
        assert e["file_rows"] == 200 == e["accounted_rows"] and e["accounted_bytes"] == e["file_bytes"], json.dumps(e)
        assert not any(k.startswith("spool_unwritable") for k in e["dropped"]) or e["dropped"] == c["dropped"]
        broker.start()
        await go()
        e2 = await phase("E2")
        assert e2["drained"] and e2["file_rows"] == 0 and e2["accounted_bytes"] == 0
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        err = (await proc.stderr.read()).decode()
        assert "Traceback" not in err, err[-3000:]
        # one line per state change (SQLite may find room in its own free pages now and then: another episode)
        episodes = e2["write_failures"]
        assert episodes >= 1 and err.count("cannot write") == episodes == err.count("writable again"), err[-3000:]
        print(f"\nfull-disk timeline: B write_failures={b['write_failures']}, C dropped={dropped}, "
              f"D recovery {d['recovery_s']} s after space came back")
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        if sub is not None:
            await sub.__aexit__(None, None, None)
        broker.stop()


async def test_gateway_reports_a_full_spool_disk_on_its_status_topic(tmp_path, mosquitto):
    """The real `gridgate gateway` with its spool on a full tmpfs: the status topic says
    ``unwritable`` while values keep flowing, and ``ok`` once space is back; one log line each."""
    import yaml

    from devices.emulator import Emulator
    from tests.support.mqtt import Collector
    from tests.support.sites import modbus_site

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg, path = modbus_site(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["gateway"]["northbound"].update({"integrity_interval": "1s", "analog_qos": 1, "spool": {"path": str(mnt / "spool.db")}})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    emu = Emulator(cfg)
    await emu.start()
    script = (f"mount -t tmpfs -o size=1m tmpfs {mnt} && cd {ROOT} && "
              f"exec {sys.executable} -m gateway.cli gateway --config {path} --broker {mosquitto.url}")
    proc = subprocess.Popen([*UNSHARE, "sh", "-c", script], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gw.log", "wb"))
    inside = Path(f"/proc/{proc.pid}/root") / str(mnt).lstrip("/")  # the tmpfs as the gateway sees it
    prefix = "gridgate/v1/gw-test"
    try:
        async with Collector(mosquitto.port, [f"{prefix}/status", f"{prefix}/meas/#"]) as sub:
            def spool_state():
                st = sub.latest("/status") or {}
                return (st.get("stats") or {}).get("spool", {}).get("state")

            await sub.wait_for(lambda: spool_state() == "ok", 30, "online with the spool ok")
            await sub.wait_for(lambda: len(sub.on("/meas/")) >= 14, 20, "values")
            filler = inside / "filler"
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            t_full = time.monotonic()
            await sub.wait_for(lambda: spool_state() == "unwritable", 30, "spool reported unwritable")
            st = sub.latest("/status")
            assert st["state"] == "online" and "full" in st["stats"]["spool"]["error"]
            assert st["stats"]["spool"]["writeFailures"] >= 1
            n = len(sub.on("/meas/"))
            await sub.wait_for(lambda: len(sub.on("/meas/")) >= n + 14, 20, "values still flowing while the disk is full")
            filler.unlink()
            t_free = time.monotonic()
            await sub.wait_for(lambda: spool_state() == "ok", 30, "spool ok again")
            t_ok = time.monotonic()
            n = len(sub.on("/meas/"))
            await sub.wait_for(lambda: len(sub.on("/meas/")) >= n + 14, 20, "values after recovery")
            assert sub.latest("/status")["stats"]["dropped"] == 0
            episodes = sub.latest("/status")["stats"]["spool"]["writeFailures"]
        assert proc.poll() is None, (tmp_path / "gw.log").read_text()[-3000:]
        print(f"\ngateway: unwritable reported {t_free - t_full:.1f} s window; ok again {t_ok - t_free:.1f} s after space came back")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        await emu.stop()
    log = (tmp_path / "gw.log").read_text()
    assert "Traceback" not in log and log.count("cannot write") == episodes == log.count("writable again"), log[-3000:]
