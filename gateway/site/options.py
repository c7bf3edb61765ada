"""Gateway options of the site file: identity and northbound (broker, TLS, spool, Sparkplug, commands)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from gateway.site.model import Duration, Name, _Model


def ed25519_public_bytes(b64: str, where: str) -> bytes:
    """A site-file key: base64 of the raw 32-byte Ed25519 public key (nothing stripped or guessed)."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: not base64; give the raw 32-byte Ed25519 public key in base64") from None
    if len(raw) != 32:
        raise ValueError(f"{where}: {len(raw)} bytes; an Ed25519 public key is 32 bytes (raw, base64-encoded)")
    return raw


class TlsOptions(_Model):
    """TLS to the broker: server authentication by ``ca_file``, mutual TLS with ``cert_file``/``key_file``.

    The one TLS model: the site file's ``gateway.northbound.tls`` block and the publisher take the same object.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = Field(None, description="CA that signed the broker's certificate (default: system store)")
    cert_file: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(None, description="client private key (PEM) for mutual TLS")
    server_hostname: str | None = Field(
        None, description="name to verify the broker certificate against (default: the host of the URL)"
    )


class SpoolOptions(_Model):
    """Durable store-and-forward between normaliser and publisher (a segment log; ``path`` is its directory)."""

    path: Path
    max_bytes: int = Field(256 << 20, ge=4096, description="size bound; analog values are dropped first")
    max_age: Duration | None = Field(None, description="values older than this are dropped (counted)")
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    drain_rate: float | None = Field(None, gt=0, description="values/s cap while a backlog drains after an outage")


class SparkplugOptions(_Model):
    """Sparkplug B 3.0 edge node (docs/sparkplug.md)."""

    group: str = Field(pattern=r"^[^/+#]+$", description="Sparkplug group id")
    edge: str | None = Field(None, pattern=r"^[^/+#]+$", description="edge node id (default: the gateway id)")
    state: Path | None = Field(None, description="file keeping bdSeq and metric aliases across restarts "
                               "(default: <spool>.sparkplug.json beside the spool; none without a spool)")
    primary_host: str | None = Field(None, pattern=r"^[^/+#]+$", description="host application id: births wait "
                                     "for spBv1.0/STATE/{id} online, and are repeated when it comes back")
    host_offline: Literal["spool", "live"] = Field(
        "spool", description="while the primary host is offline: spool (hold data, sent as historical when it "
        "returns) or live (keep publishing)")
    birth_wait: Duration = Field(5.0, description="at start, births wait at most this long for every point's "
                                 "first reading (points still unread are sent null, quality bad)")


class NorthboundOptions(_Model):
    topic_prefix: str = Field("gridgate/v1", min_length=1, max_length=256)
    url: str | None = Field(None, pattern=r"^mqtts?://", description="broker URL; `--broker` overrides it")
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password (never in the file)")
    require_tls: bool = Field(False, description="refuse to connect without TLS")
    tls: TlsOptions | None = None
    queue_size: int = Field(10000, ge=10, description="values held in memory while the broker is unreachable")
    spool: SpoolOptions | None = Field(None, description="durable spool instead of the in-memory queue")
    integrity_interval: Duration = Field(60.0, description="every value is republished at least this often")
    analog_qos: Literal[0, 1] = 0
    analog_expiry: Duration | None = Field(None, description="MQTT 5 message expiry of analog values")
    payload: Literal["full", "compact"] = Field(
        "full",
        description="compact: values carry only the measurement's mRID (the description is in the retained catalog); "
        "about a third of the bytes, for WAN and radio links",
    )
    encoding: Literal["cim", "sparkplug", "both"] = "cim"
    sparkplug: SparkplugOptions | None = None
    commands: bool = Field(False, description="subscribe to .../cmd/{mRID} (points still need command.enabled)")
    operator_topics: bool = Field(
        False, description="commands on .../cmd/{operator}/{mRID} instead: a broker ACL (pattern write .../cmd/%u/#) "
        "binds the operator to the authenticated MQTT user; see docs/mqtt-topics.md")
    command_keys: dict[str, str] = Field(
        default_factory=dict, description="operator → base64 raw 32-byte Ed25519 public key; when set, only requests "
        "signed by the operator's key are executed (docs/mqtt-topics.md)")

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, v: str) -> str:
        """MQTT forbids NUL in topics and +/# in published ones; a leading / or $ makes an odd or system topic."""
        bad = sorted({c for c in v if c in "+#\x00" or ord(c) < 0x20})
        if bad:
            names = ", ".join({"\x00": "NUL", "+": "'+'", "#": "'#'"}.get(c, f"control character {ord(c):#04x}") for c in bad)
            raise ValueError(f"{names} not allowed in a topic prefix (MQTT wildcards or invalid); use e.g. gridgate/v1")
        if v.startswith(("/", "$")) or v.endswith("/") or "//" in v:
            raise ValueError(f"{v!r}: no leading '/' or '$', trailing '/' or empty level; use e.g. gridgate/v1")
        return v

    @field_validator("command_keys")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for operator, key in v.items():
            ed25519_public_bytes(key, f"command_keys.{operator}")  # raises with the place and the fix
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "NorthboundOptions":
        if self.encoding != "cim" and self.sparkplug is None:
            raise ValueError(f"@sparkplug: encoding {self.encoding!r} needs sparkplug: {{group: ...}}")
        if self.url and (self.require_tls or self.tls) and not self.url.startswith("mqtts://"):
            raise ValueError("@url: TLS is required or configured; use an mqtts:// URL (e.g. mqtts://broker:8883)")
        return self


class GatewayOptions(_Model):
    id: Name = "gw1"
    northbound: NorthboundOptions = Field(default_factory=NorthboundOptions)


