"""gmqtt, adapted: its reconnect loop off, PUBACKs (with MQTT 5 reason codes) reported to us,
one owner of packet ids.

Everything here leans on gmqtt 0.8.0 internals (pinned in pyproject.toml); it is kept in
one place so a gmqtt upgrade is checked here and in tests/northbound. MqttPublisher
touches no gmqtt attribute with a leading underscore: it calls the functions below.
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


class PacketIds:
    """The single allocator of one connection's packet ids (QoS 1 PUBLISH, SUBSCRIBE, UNSUBSCRIBE).

    Installed as gmqtt's ``id_generator``, so gmqtt's SUBSCRIBE and our PUBLISH encoder draw
    from one pool. gmqtt's own generator caps ids at the broker's Receive Maximum, which
    bounds only QoS 1 PUBLISHes in flight (MQTT 5 §3.3.4); with our window at Receive
    Maximum − 1 one SUBSCRIBE in flight exhausted it (``OverflowError: All ids has already
    used``, issue 14). The publisher's window keeps PUBLISHes below Receive Maximum; ids
    use the whole 1..65535 range.
    """

    LIMIT = 65535

    def __init__(self) -> None:
        self._used: set[int] = set()
        self._last = 0

    @property
    def _max(self) -> int:  # gmqtt sets this from CONNACK's Receive Maximum: not an id bound, ignored
        return self.LIMIT

    @_max.setter
    def _max(self, _value: int) -> None:
        pass

    def next_id(self) -> int:
        if len(self._used) >= self.LIMIT:
            raise OverflowError(f"all {self.LIMIT} MQTT packet ids are in flight")
        while True:
            self._last = self._last % self.LIMIT + 1
            if self._last not in self._used:
                self._used.add(self._last)
                return self._last

    def free_id(self, mid: int) -> None:
        self._used.discard(mid)

    def __len__(self) -> int:
        return len(self._used)


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
    handler.id_generator = PacketIds()  # before connect: gmqtt hands it to the protocol at connect time
    handler._handle_packet = _puback_fast_path(client, handler._handle_packet)
    return client


_PUBACK = 0x40


def _puback_fast_path(client: Client, other: Callable[[int, bytes], None]) -> Callable[[int, bytes], None]:
    """gmqtt's packet dispatch with PUBACKs handled here, everything else as gmqtt does.

    gmqtt takes a PUBACK through three debug log calls and six calls (dispatch, handler, client,
    storage) before our AckStorage sees it; at QoS 1 that was ~⅕ of the publisher's CPU per
    message (py-spy, bench_northbound.py --live 50000). Here: free the packet id, forget the stored
    packet, report the ack with its MQTT 5 reason code (gmqtt ignores it) — the same effects.
    """
    ids: PacketIds = client._package_handler.id_generator
    storage: AckStorage = client._persistent_storage
    stored = storage._messages

    def handle_packet(cmd: int, packet: bytes) -> None:
        if cmd & 0xF0 != _PUBACK:
            other(cmd, packet)
            return
        mid = packet[0] << 8 | packet[1]
        ids.free_id(mid)
        if stored.pop(mid, None) is None:
            return  # not ours (any more): a late or duplicate PUBACK
        storage.reason = packet[2] if len(packet) > 2 else 0
        try:
            storage.on_ack(mid)
        finally:
            storage.reason = 0
            if not stored:
                storage._check_empty()  # gmqtt's wait_empty() (its disconnect) waits for this

    return handle_packet


# ---------------------------------------------------------------- what MqttPublisher needs of a connected client


def new_mid(client: Client) -> int:
    """A packet id for one QoS 1 PUBLISH (from the connection's single PacketIds)."""
    return client._package_handler.id_generator.next_id()


def track(client: Client, mid: int, packet: bytes) -> None:
    """Hold a sent QoS 1 PUBLISH until its PUBACK (then AckStorage reports it)."""
    client._persistent_storage.push_message(mid, packet)


def puback_reason(client: Client) -> int:
    """The MQTT 5 reason code of the PUBACK being handled (0 on 3.1.1)."""
    return client._persistent_storage.reason


def transport(client: Client) -> asyncio.Transport:
    return client._connection._transport


def send_raw(client: Client, data: bytes | bytearray) -> None:
    """Write already-encoded packets; nothing if the connection is closing."""
    if not client._connection.is_closing():
        client._connection.send_package(data)


def abort(client: Client) -> None:
    conn = client._connection
    if conn is not None and not conn.is_closing():
        conn._transport.abort()


def downgraded_to_311(client: Client) -> bool:
    """True when gmqtt saw CONNACK 0x01 (no MQTT 5) and switched the client to 3.1.1."""
    from gmqtt.mqtt.constants import MQTTv311

    return client._connection_state.protocol_version == MQTTv311


def broker_receive_maximum(client: Client) -> int:
    """The broker's Receive Maximum from CONNACK (65535 when absent, as MQTT 5 defines)."""
    rm = client._package_handler._connack_properties.get("receive_maximum")
    return rm[0] if rm else 65535


def acked_all(client: gmqtt.Client) -> bool:
    """Every QoS 1 message this (plain gmqtt) client sent is acknowledged (conduits' Republisher)."""
    return client._persistent_storage.is_empty
