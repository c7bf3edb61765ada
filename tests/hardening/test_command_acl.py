"""Operator binding (issue 14): with ``operator_topics`` each operator commands on
``.../cmd/{operator}/{mRID}``, and the documented Mosquitto ACL lets a user write only under
its own name. A request published where the ACL does not allow it is never executed; a request
whose operator differs from the topic's is refused. Real Mosquitto with password_file and
acl_file, our DNP3 master, a real DNP3 outstation."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gateway.northbound.commands import CommandPoint, CommandRouter
from gateway.northbound.mqtt import MqttPublisher
from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import Mosquitto

dnp3 = pytest.importorskip("tests.dnp3.conftest")
from tests.dnp3.peer import device  # noqa: E402
from tests.support.wait import until

ROOT = Path(__file__).resolve().parents[2]
POINTS = [{"name": "CB", "group": "double_binary", "index": 0, "command": {"enabled": True, "mode": "sbo"}}]
CB = CommandPoint("5b3c0a52-cb01", "rtu1", "CB", "Discrete", operators=("alice", "mallory"), mode="sbo", ttl=5.0,
                  measurement_type="SwitchPosition")
CMD = "gridgate/v1/gw1/cmd"


def recommended_acl() -> str:
    """The ACL documented in docs/mqtt-topics.md, read from there so docs and test cannot drift."""
    text = (ROOT / "docs" / "mqtt-topics.md").read_text()
    block = text.split("<!-- recommended-acl -->", 1)[1].split("```", 2)[1]
    return block.split("\n", 1)[1]  # drop the fence's language tag line


@pytest.fixture
def acl_broker():
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs mosquitto_passwd (apt-get install -y mosquitto)")
    root = Path(tempfile.mkdtemp(prefix="gg-acl-"))
    root.chmod(0o755)  # mosquitto run as root drops to its own user before reading these
    pw = root / "passwd"
    pw.write_text("")
    for user in ("gw1", "alice", "mallory"):
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, f"{user}-pw"], check=True, capture_output=True, timeout=10)
    (root / "acl").write_text(recommended_acl())
    for f in (pw, root / "acl"):
        f.chmod(0o644)
    with Mosquitto(extra=f"allow_anonymous false\npassword_file {pw}\nacl_file {root / 'acl'}\n") as broker:
        yield broker
    shutil.rmtree(root, ignore_errors=True)


def _req(id_, value, operator):
    return json.dumps({"id": id_, "value": value, "operator": operator, "issued": time.time()}).encode()


async def _until(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    return await until(cond, timeout, 0.05)

async def test_acl_binds_the_operator_to_the_mqtt_user(acl_broker):
    assert "%u" in recommended_acl()
    async with dnp3.outstation(device(POINTS)) as os_, dnp3.source(device(POINTS), os_.port) as (src, _got):
        await _until(lambda: src.connected and src.stats["integrity_polls"] >= 1)
        pub = MqttPublisher(acl_broker.url, "gw1", username="gw1", password="gw1-pw")
        router = CommandRouter("gridgate/v1", "gw1", [CB], {"rtu1": src}, pub.publish, allowed=True,
                               operator_topics=True)
        pub.subscribe(router.subscription, router.on_message)
        await pub.start()
        await _until(lambda: pub.connected)
        await asyncio.sleep(0.5)  # the SUBSCRIBE is in place
        before = os_.value("CB")
        target = 1 if before == 2 else 2
        async with RawSubscriber(acl_broker.port, [f"{CMD}/mallory/+/result"], client_id="mallory",
                                 username="mallory", password="mallory-pw") as mallory, \
                RawSubscriber(acl_broker.port, [f"{CMD}/alice/+/result"], client_id="alice",
                              username="alice", password="alice-pw") as alice:
            # mallory writes where only alice may: the broker drops it, the gateway never sees it
            mallory.publish(f"{CMD}/alice/{CB.mrid}", _req("m-1", target, "alice"))
            mallory.publish(f"{CMD}/{CB.mrid}", _req("m-2", target, "alice"))  # the shared topic: not subscribed, not allowed
            # on mallory's own topic, claiming to be alice: refused with a reason
            mallory.publish(f"{CMD}/mallory/{CB.mrid}", _req("m-3", target, "alice"))
            assert await mallory.wait_for(lambda m: len(m) == 1, 10)
            r = json.loads(mallory.messages[0].payload)
            assert (r["id"], r["status"], r["reason"]) == ("m-3", "rejected", "operator_not_allowed")
            await asyncio.sleep(1.0)
            assert os_.value("CB") == before and sum(router.stats.values()) == 1  # m-1, m-2 never arrived
            assert alice.messages == []  # mallory cannot read alice's results either
            # alice on her own topic operates the breaker
            alice.publish(f"{CMD}/alice/{CB.mrid}", _req("a-1", target, "alice"))
            assert await alice.wait_for(lambda m: len(m) == 1, 10)
            r = json.loads(alice.messages[0].payload)
            assert (r["id"], r["status"], r["operator"]) == ("a-1", "done", "alice")
            assert os_.value("CB") == target
            await asyncio.sleep(0.5)
            assert len(mallory.messages) == 1  # and mallory saw nothing of it
        await pub.stop()
