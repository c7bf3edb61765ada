"""TLS, mutual TLS, username/password and ACLs against a real Mosquitto with generated certificates.

Each refusal must be a clear log line naming the cause; secrets never appear in logs.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest

from gateway.northbound.mqtt import MqttPublisher, NorthboundConfigError
from gateway.pipeline import Backoff
from gateway.site.options import TlsOptions
from tests.northbound.certs import make_pki
from tests.northbound.rawsub import RawSubscriber
from tests.support.mosquitto import Mosquitto, free_port

SECRET = "s3cret-Pa55"
ACL = """\
user gw1
topic readwrite gridgate/v1/gw1/#
user hist
topic read gridgate/#
"""


@pytest.fixture(scope="module")
def secure_broker():
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs openssl and mosquitto_passwd (apt-get install -y openssl mosquitto)")
    root = Path(tempfile.mkdtemp(prefix="gg-pki-"))
    root.chmod(0o755)  # mosquitto run as root drops to its own user before reading these
    pki = make_pki(root / "pki")
    (root / "pki").chmod(0o755)
    pw = root / "passwd"
    pw.write_text("")
    for user, password in (("gw1", SECRET), ("hist", "hist-pw")):
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True, capture_output=True, timeout=10)
    (root / "acl").write_text(ACL)
    for f in (pw, root / "acl"):
        f.chmod(0o644)
    server_auth_port = free_port()
    extra = (  # the fixture's listener: mutual TLS; a second one: server authentication only
        f"cafile {pki.ca_crt}\ncertfile {pki.server_crt}\nkeyfile {pki.server_key}\n"
        "require_certificate true\n"
        f"listener {server_auth_port} 127.0.0.1\n"
        f"cafile {pki.ca_crt}\ncertfile {pki.server_crt}\nkeyfile {pki.server_key}\n"
        f"allow_anonymous false\npassword_file {pw}\nacl_file {root / 'acl'}\n"
    )
    with Mosquitto(extra=extra) as broker:
        broker.pki = pki
        broker.tls_url = f"mqtts://127.0.0.1:{broker.port}"
        broker.server_auth_url = f"mqtts://127.0.0.1:{server_auth_port}"
        yield broker
    shutil.rmtree(root, ignore_errors=True)


def _sub_ctx(pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_crt))
    ctx.load_cert_chain(str(pki.hist_crt), str(pki.hist_key))
    return ctx


def _pub(broker, *, tls: TlsOptions, username="gw1", password=SECRET, **kw) -> MqttPublisher:
    return MqttPublisher(broker.tls_url, "gw1", tls=tls, username=username, password=password, require_tls=True,
                         backoff=Backoff(initial=0.2, maximum=0.5), connect_timeout=3, **kw)


async def test_mutual_tls_with_password_publishes_and_acl_refusal_is_logged(secure_broker, caplog):
    pki = secure_broker.pki
    caplog.set_level(logging.INFO)
    async with RawSubscriber(secure_broker.port, ["#"], client_id="hist", username="hist", password="hist-pw",
                             ssl_ctx=_sub_ctx(pki)) as sub:
        pub = _pub(secure_broker, tls=TlsOptions(ca_file=pki.ca_crt, cert_file=pki.client_crt, key_file=pki.client_key))
        await pub.start()
        assert pub.connected, pub.stats.last_error
        assert pub.publish("gridgate/v1/gw1/value", b"42", qos=1)
        assert pub.publish("gridgate/v1/other-gw/value", b"forged", qos=1)  # not this gateway's topic
        assert pub.publish("gridgate/v1/other-gw/value", b"forged again", qos=1)
        assert await pub.drain(5)
        assert await sub.wait_for(lambda m: len(m) >= 1, 5)
        await sub.wait_for(lambda m: len(m) >= 2, 0.5)
        assert [(m.topic, m.payload) for m in sub.messages] == [("gridgate/v1/gw1/value", b"42")]
        assert pub.stats.acked == 1 and pub.stats.dropped == {"refused_not_authorized": 2}
        await pub.stop()
    refusals = [r.getMessage() for r in caplog.records if "refused a publish" in r.getMessage()]
    assert len(refusals) == 1  # once per topic, counted every time
    assert "'gridgate/v1/other-gw/value': not authorized (0x87); check the broker ACL for user 'gw1'" in refusals[0]
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "case, expect",
    [
        ("wrong password", "broker refused the connection: code 135 (Connection Refused: Not authorized) (check username/password"),
        ("unknown CA (server cert)", "TLS certificate rejected: self-signed certificate in certificate chain (check tls.ca_file"),
        ("client cert from a rogue CA", "closed the connection before CONNACK (closed without an error); with TLS this usually means it rejected our client certificate"),
        ("no client cert", "it rejected our client certificate"),
    ],
)
async def test_refusals_are_clear_log_lines(secure_broker, caplog, case, expect):
    pki = secure_broker.pki
    tls = TlsOptions(ca_file=pki.ca_crt, cert_file=pki.client_crt, key_file=pki.client_key)
    password = SECRET
    if case == "wrong password":
        password = "wrong-" + SECRET
    elif case == "unknown CA (server cert)":
        tls = TlsOptions(ca_file=pki.rogue_crt, cert_file=pki.client_crt, key_file=pki.client_key)
    elif case == "client cert from a rogue CA":
        tls = TlsOptions(ca_file=pki.ca_crt, cert_file=pki.intruder_crt, key_file=pki.intruder_key)
    elif case == "no client cert":
        tls = TlsOptions(ca_file=pki.ca_crt)
    pub = _pub(secure_broker, tls=tls, password=password)
    await pub.start()
    try:
        assert not pub.connected
        assert pub.stats.connect_failures >= 1
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("gateway.northbound") and r.levelno >= logging.WARNING]
        assert any(expect in line for line in lines), lines
        print(case, "→", lines[0])
        assert SECRET not in caplog.text
    finally:
        await pub.stop()


async def test_server_authenticated_tls_with_password(secure_broker, caplog):
    pki = secure_broker.pki
    pub = MqttPublisher(secure_broker.server_auth_url, "gw1", tls=TlsOptions(ca_file=pki.ca_crt), username="gw1",
                        password=SECRET, require_tls=True, connect_timeout=3)
    await pub.start()
    try:
        assert pub.connected, pub.stats.last_error
        pub.publish("gridgate/v1/gw1/value", b"7", qos=1)
        assert await pub.drain(5) and pub.stats.acked == 1 and not pub.stats.dropped
    finally:
        await pub.stop()
    bad = MqttPublisher(secure_broker.server_auth_url, "gw1", tls=TlsOptions(ca_file=pki.ca_crt), username="gw1",
                        password="nope", require_tls=True, connect_timeout=3, backoff=Backoff(initial=0.2, maximum=0.5))
    await bad.start()
    try:
        assert not bad.connected and "broker refused the connection" in bad.stats.last_error
    finally:
        await bad.stop()
    assert SECRET not in caplog.text and "nope" not in caplog.text


def test_plain_mqtt_refused_when_profile_requires_tls():
    with pytest.raises(NorthboundConfigError, match="requires TLS; use mqtts://"):
        MqttPublisher("mqtt://127.0.0.1:1883", "gw1", require_tls=True)
    with pytest.raises(NorthboundConfigError, match=r"tls.ca_file: .* does not exist"):
        MqttPublisher("mqtts://127.0.0.1:8883", "gw1", tls=TlsOptions(ca_file=Path("/nonexistent/ca.crt")))


# ---------------------------------------------------------------- the site file's own TLS block (one TLS model)


def _tls_site(tmp_path, broker, server_hostname: str):
    """The test site with a ``gateway.northbound`` block naming the broker, credentials and TLS files."""
    import yaml

    from gateway.config import load_config
    from tests.support.sites import modbus_site

    pki = broker.pki
    _, path = modbus_site(tmp_path, poll="200ms")
    data = yaml.safe_load(path.read_text())
    data["gateway"]["id"] = "gw1"  # the broker's ACL lets user gw1 write gridgate/v1/gw1/#
    data["gateway"]["northbound"].update({
        "url": broker.tls_url, "username": "gw1", "password_env": "GG_TEST_BROKER_PW", "require_tls": True,
        "tls": {"ca_file": str(pki.ca_crt), "cert_file": str(pki.client_crt), "key_file": str(pki.client_key),
                "server_hostname": server_hostname},
    })
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


async def test_site_file_tls_block_starts_and_publishes_over_mutual_tls(secure_broker, tmp_path, monkeypatch):
    """Regression: a site file with `gateway.northbound.tls` (including server_hostname) validated, then
    crashed the gateway at start on a key of a second TLS model. One model now; values flow over mTLS."""
    import json

    from devices.emulator import Emulator
    from gateway.app import Gateway, GatewayOptions

    monkeypatch.setenv("GG_TEST_BROKER_PW", SECRET)
    cfg = _tls_site(tmp_path, secure_broker, server_hostname="localhost")  # the certificate names localhost
    pki = secure_broker.pki
    async with Emulator(cfg):
        async with RawSubscriber(secure_broker.port, ["gridgate/v1/gw1/meas/#"], client_id="hist", username="hist",
                                 password="hist-pw", ssl_ctx=_sub_ctx(pki)) as sub:
            gw = Gateway(cfg, GatewayOptions())  # broker, TLS and credentials all from the site file
            await gw.start()
            try:
                assert await sub.wait_for(lambda m: any(x.topic.endswith("ThreePhaseActivePower/ABC") for x in m), 15)
                assert gw.publisher.connected
            finally:
                await gw.stop()
    p = next(json.loads(m.payload) for m in sub.messages if m.topic.endswith("ThreePhaseActivePower/ABC"))
    assert p["value"] == pytest.approx(4321.5, abs=0.01) and p["quality"]["validity"] == "GOOD"


async def test_site_file_tls_server_hostname_is_verified(secure_broker, tmp_path, monkeypatch):
    """`server_hostname` is the name checked against the broker certificate, not a decoration."""
    from gateway.app import Gateway, GatewayOptions

    monkeypatch.setenv("GG_TEST_BROKER_PW", SECRET)
    cfg = _tls_site(tmp_path, secure_broker, server_hostname="not-the-broker.example")
    gw = Gateway(cfg, GatewayOptions())
    await gw.start()
    try:
        await asyncio.sleep(1.0)
        assert not gw.publisher.connected
        assert "not-the-broker.example" in gw.publisher.stats.last_error, gw.publisher.stats.last_error
    finally:
        await gw.stop()
