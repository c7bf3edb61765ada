"""gmqtt, adapted: its reconnect loop off, PUBACKs (with MQTT 5 reason codes) reported to us.

Everything here leans on gmqtt 0.8.0 internals (pinned in pyproject.toml); it is kept in
one place so a gmqtt upgrade is checked here and in tests/northbound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import gmqtt
from gmqtt.storage import PersistentStorage

from gateway.northbound.message import Message

log = logging.getLogger("gateway.northbound.mqtt.gmqtt")


class _NotOurReconnects(logging.Filter):
    """gmqtt logs about its own reconnect policy, which is off here; ours says what happens."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "reconnect" not in str(record.msg)


log.addFilter(_NotOurReconnects())


#: MQTT 5 PUBACK reason codes that refuse a message (0x10 "no matching subscribers" is a success)
PUBACK_REFUSALS = {
    0x80: "unspecified error", 0x83: "implementation specific error", 0x87: "not authorized",
    0x90: "topic name invalid", 0x91: "packet identifier in use", 0x97: "quota exceeded", 0x99: "payload format invalid",
}


class AckStorage(PersistentStorage):
    """gmqtt's inflight store, tapped: reports each PUBACK of a message it holds.

    ``reason`` holds the MQTT 5 reason code of the PUBACK being handled (gmqtt ignores it).
    """

    def __init__(self, on_ack: Callable[[int], None]) -> None:
        super().__init__()
        self.on_ack = on_ack
        self.reason = 0

    def remove_message_by_mid(self, mid):
        known = mid in self._messages
        super().remove_message_by_mid(mid)
        if known:
            self.on_ack(mid)


class DroppedBeforeConnack(ConnectionError):
    pass


def loss_cause(client: "Client") -> str:
    """What the transport died of, as far as asyncio recorded it."""
    conn = client._connection
    reader = getattr(getattr(conn, "_protocol", None), "_stream_reader", None)
    exc = reader.exception() if reader is not None else None
    return f"{type(exc).__name__}: {exc}" if exc else "closed without an error"


class Client(gmqtt.Client):
    """gmqtt client whose own reconnect loop is off: MqttPublisher owns reconnection."""

    def _allow_reconnect(self):
        return False


def new_client(client_id: str, will: Message | None, username: str | None, password: str | None,
               on_ack: Callable[["Client", int], None], on_disconnect: Callable) -> Client:
    """A fresh client for one connection; ``gg_lost`` is set when that connection dies."""
    gwill = gmqtt.Message(will.topic, will.payload, qos=will.qos, retain=will.retain) if will is not None else None
    client = Client(client_id, clean_session=True, will_message=gwill, logger=log,
                    persistent_storage=AckStorage(lambda mid: on_ack(client, mid)))
    if username is not None:
        client.set_auth_credentials(username, password)
    client.gg_lost = asyncio.Event()
    client.on_disconnect = on_disconnect
    handler = client._package_handler
    original = handler._handle_puback_packet

    def puback_with_reason(cmd: int, packet: bytes) -> None:
        storage = client._persistent_storage
        storage.reason = packet[2] if len(packet) > 2 else 0
        try:
            original(cmd, packet)
        finally:
            storage.reason = 0

    handler._handle_puback_packet = puback_with_reason  # found by gmqtt's getattr dispatch
    return client
