"""The northbound MQTT publisher: gmqtt underneath, our own reconnect, queue and backpressure.

gmqtt is fast but has no backpressure and a reconnect loop we cannot bound or observe,
so each connection gets a fresh gmqtt client with its auto-reconnect disabled
(gmqtt_adapter.py); this module reconnects with ``Backoff``, keeps accepted messages in an outbox
(in-memory queue or durable spool) while the broker is away, caps QoS 1 messages in
flight and the socket's write buffer, and re-sends unacknowledged QoS 1 messages after
a loss (so subscribers may see QoS 1 duplicates; any gap is a counted drop).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import ssl
import time
from collections import deque
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Iterator, Literal

import gmqtt
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from gmqtt.mqtt.handler import MQTTConnectError

from gateway.histogram import LATENCY_BUCKETS, Buckets
from gateway.northbound import gmqtt_adapter as gq
from gateway.northbound.endpoint import NorthboundConfigError, parse_url, ssl_context
from gateway.northbound.gmqtt_adapter import PUBACK_REFUSALS, Client, DroppedBeforeConnack, loss_cause, new_client
from gateway.northbound.message import Message, PublisherStats, ValueMessage
from gateway.northbound.outbox import MemoryOutbox, Outbox
from gateway.northbound.wire import append_publish0, publish_head
from gateway.pipeline import Backoff

if TYPE_CHECKING:
    from gateway.site.options import TlsOptions

log = logging.getLogger(__name__)

_WRITE_CHUNK = 64 * 1024
#: messages encoded per pass of the send loop between its checks (window, write buffer, connection)
_BURST = 256
OnConnect = Callable[[], "Awaitable[None] | None"]


class MqttPublisher:
    """Publish to one broker; survive its absence without losing accepted messages.

    ``publish`` never blocks: it appends to the outbox (False and counted when full).
    A sender task drains the outbox in order while connected, at most ``max_inflight``
    unacknowledged QoS 1 messages and ``max_write_buffer`` bytes queued in the socket.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        will: Message | Callable[[], Message] | None = None,
        queue_size: int = 10000,
        protocol: Literal["5", "3.1.1"] = "5",
        tls: TlsOptions | None = None,
        username: str | None = None,
        password: str | None = None,
        on_connect: OnConnect | None = None,
        *,
        outbox: Outbox | None = None,
        require_tls: bool = False,
        max_inflight: int = 1000,
        max_write_buffer: int = 1 << 20,
        keepalive: int = 30,
        connect_timeout: float = 5.0,
        backoff: Backoff | None = None,
        rate_limit: float | None = None,
    ) -> None:
        self.host, self.port, use_tls = parse_url(url)
        if protocol not in ("5", "3.1.1"):
            raise NorthboundConfigError(f"northbound protocol {protocol!r}: use '5' or '3.1.1'")
        if require_tls and not use_tls:
            raise NorthboundConfigError(
                f"northbound url {url!r}: this profile requires TLS; use mqtts://{self.host}:8883 and set tls.ca_file"
            )
        if tls is not None and not use_tls:
            raise NorthboundConfigError(f"northbound url {url!r}: tls options given but the scheme is mqtt://; use mqtts://")
        if password is not None and username is None:
            raise NorthboundConfigError("northbound password set without username")
        self.url = url
        self.client_id = client_id
        self.will = will
        self.protocol = protocol
        if use_tls and tls is None:  # mqtts:// without options: the defaults (pydantic only then: a lean gateway has none)
            from gateway.site.options import TlsOptions

            tls = TlsOptions()
        self._ssl: ssl.SSLContext | bool = ssl_context(tls) if use_tls and tls is not None else False
        self._username = username
        self._password = password
        self._on_connect = on_connect
        self._outbox: Outbox = outbox if outbox is not None else MemoryOutbox(queue_size)
        # with a spool, state messages (no kind: status, catalog) skip it
        self._side: Outbox | None = MemoryOutbox(queue_size) if outbox is not None else None
        self._queues: list[Outbox] = [q for q in (self._side, self._outbox) if q is not None]
        self._priority: deque[Message] = deque()  # published from on_connect/stop: sent before the backlog
        #: lazily produced state sent after ``_priority`` and before the queues (the birth's catalog): one message
        #: in memory at a time, not 50,000; a connection's feeds end with it (the next birth starts its own)
        self._feeds: deque[Iterator[Message]] = deque()
        self._held: tuple[int, Message] | None = None  # a QoS 1 value taken while the window was full
        self.max_inflight = max_inflight
        self.max_write_buffer = max_write_buffer
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.rate_limit = rate_limit
        self._backoff = backoff or Backoff(initial=0.2, maximum=10.0)
        self._stats = PublisherStats()
        self.latency = Buckets(LATENCY_BUCKETS)  # value born → written (QoS 0) / PUBACK (QoS 1); status + /metrics
        self._client: Client | None = None
        self._inflight: dict[int, tuple[Outbox | None, int, Message]] = {}  # mid → (queue (None: priority), ref, message)
        self._refused_topics: set[tuple[str, int]] = set()
        self._subscriptions: dict[str, Callable[[str, bytes], None]] = {}
        self._window = max_inflight
        self._wake = asyncio.Event()
        if hasattr(self._outbox, "on_append"):
            self._outbox.on_append = self._wake.set  # values appended to the spool directly
        self._flusher: asyncio.Task | None = None
        self._lost = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._in_on_connect = False
        self._stopping = False
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ public API

    @property
    def connected(self) -> bool:
        return self._stats.connected

    @property
    def stats(self) -> PublisherStats:
        self._stats.queued = self._queued()
        self._stats.inflight = len(self._inflight)
        for kind, n in getattr(self._outbox, "dropped", {}).items():
            self._stats.dropped[f"spool_{kind}"] = n
        return self._stats

    async def start(self) -> None:
        """Start the connection task; return after the first connect attempt (succeeded or not)."""
        if self._task is not None:
            raise RuntimeError("MqttPublisher.start() called twice")
        self._task = asyncio.create_task(self._run(), name=f"mqtt-publisher-{self.client_id}")
        if hasattr(self._outbox, "flush"):
            self._flusher = asyncio.create_task(self._flush_periodically(), name="spool-flush")
        first = asyncio.ensure_future(self._first_attempt.wait())
        await asyncio.wait({self._task, first}, return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        if self._task.done():
            self._task.result()  # a bug in _run: surface it

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, *, kind: str | None = None,
                seq: int | None = None, expiry: int | None = None) -> bool:
        """Queue one message; False (and counted in ``stats.dropped['queue_full']``) when the outbox is full.

        ``kind`` (analog/accumulator/discrete/event) marks a *value*: with a spool it is spooled
        under ``seq`` (the spool's next seq if None) and its kind decides what a bound drops
        first. Without ``kind`` it is *state* (status, catalog): kept in memory, sent ahead of
        a backlog. ``expiry``: MQTT 5 message expiry in seconds.
        """
        if qos not in (0, 1):
            raise ValueError(f"qos {qos}: the publisher supports QoS 0 and 1")
        msg = Message(topic, payload, qos, retain, expiry, time.time() if kind is not None else 0.0)
        if self._in_on_connect:
            self._priority.append(msg)
        elif not (self._outbox if kind is not None or self._side is None else self._side).put(msg, kind or "analog", seq):
            self._stats.dropped["queue_full"] += 1
            return False
        self._wake.set()
        return True

    def publish_many(self, msgs: list[ValueMessage]) -> int:
        """Queue values as they are (no copy: each is the MQTT message, its outbox kind and seq); how many
        were accepted. The refused ones are counted in ``stats.dropped['queue_full']`` as by :meth:`publish`."""
        if self._in_on_connect:
            self._priority.extend(msgs)
            self._wake.set()
            return len(msgs)
        for m in msgs:
            if m.qos not in (0, 1):
                raise ValueError(f"qos {m.qos}: the publisher supports QoS 0 and 1")
        # one call per batch (a spool stamps, checks and queues them in one loop); one clock read per batch:
        # publish latency and the oldest queued age start here
        accepted = self._outbox.put_many(msgs, time.time())
        if accepted < len(msgs):
            self._stats.dropped["queue_full"] += len(msgs) - accepted
        if accepted:
            self._wake.set()
        return accepted

    def publish_feed(self, messages: Iterable[Message]) -> None:
        """State messages produced as they are sent (e.g. the retained catalog of a birth): after what
        :meth:`publish` put ahead of the backlog, before the queued values, in order. Dropped with the
        connection: whoever publishes them on connect publishes them again on the next one."""
        self._feeds.append(iter(messages))
        self._wake.set()

    def subscribe(self, topic: str, handler: Callable[[str, bytes], None]) -> None:
        """Subscribe (QoS 1) on every connection; ``handler(topic, payload)`` runs per message (e.g. Sparkplug NCMD)."""
        self._subscriptions[topic] = handler
        if self._client is not None and self.connected:
            self._client.on_message = self._on_message
            self._client.subscribe(gmqtt.Subscription(topic, qos=1))

    def _on_message(self, client, topic: str, payload: bytes, qos: int, properties: dict) -> int:
        for pattern, handler in self._subscriptions.items():
            if _matches(pattern, topic):
                try:
                    handler(topic, payload)
                except Exception as exc:
                    log.error("northbound: handler for %r failed on a message to %r: %s", pattern, topic, exc)
                    self._stats.dropped["inbound_handler_error"] += 1
        return 0

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight; False if that did not happen within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._queued() or self._inflight:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self, final: Message | None = None, timeout: float = 5.0) -> None:
        """Publish ``final`` (e.g. the retained offline status), flush, then disconnect cleanly.

        A clean DISCONNECT makes the broker discard the will, hence ``final``.
        """
        if self._task is None:
            return
        if final is not None:
            if self.connected:
                self._priority.append(final)
                self._wake.set()
            else:
                log.warning("northbound %s: not connected, final message to %r not sent", self._where(), final.topic)
                self._stats.dropped["final_not_sent"] += 1
        was_connected = self.connected
        if was_connected:
            await self.drain(timeout)
        self._stopping = True
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
            self._outbox.flush()
        client = self._client
        if client is not None and was_connected:
            try:
                await asyncio.wait_for(client.disconnect(), timeout)
            except (asyncio.TimeoutError, OSError) as exc:
                log.warning("northbound %s: clean disconnect failed: %s", self._where(), exc)
        self._stats.connected = False
        kept = len(self._outbox) if hasattr(self._outbox, "flush") else 0  # a spool keeps its values for the next run
        lost = self._queued() - kept
        if lost:
            self._stats.dropped["undelivered_at_stop"] += lost
            log.warning("northbound %s: stopped with %d message(s) not delivered (lost)", self._where(), lost)
        if kept:
            log.info("northbound %s: %d value(s) stay in the spool for the next start", self._where(), kept)

    async def _flush_periodically(self) -> None:
        """A spool commits appended values and deletes delivered ones at least every ``max_delay``."""
        interval = getattr(self._outbox, "max_delay", 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                self._outbox.flush()
            except Exception:
                log.exception("northbound: spool flush failed; values stay in memory until the next flush")

    # ------------------------------------------------------------------ connection loop

    def _where(self) -> str:
        return f"{self.host}:{self.port} (client id {self.client_id!r})"

    def _new_client(self) -> Client:
        will = self.will() if callable(self.will) else self.will  # a callable gives each CONNECT its own (Sparkplug bdSeq)
        return new_client(self.client_id, will, self._username, self._password, self._acked, self._disconnected)

    async def _run(self) -> None:
        version = MQTTv50 if self.protocol == "5" else MQTTv311
        while not self._stopping:
            client = self._new_client()
            try:
                await self._connect(client, version)
            except (OSError, asyncio.TimeoutError, MQTTConnectError, ssl.SSLError) as exc:
                if version == MQTTv50 and gq.downgraded_to_311(client):
                    # CONNACK 0x01 "unacceptable protocol version" (amqtt): gmqtt flagged the downgrade
                    log.warning("northbound: %s does not speak MQTT 5; falling back to MQTT 3.1.1"
                                " (set protocol '3.1.1' to skip this)", self._where())
                    self.protocol, version = "3.1.1", MQTTv311
                    self._abort(client)
                    continue
                self._connect_failed(client, exc)
                self._first_attempt.set()
                await asyncio.sleep(self._backoff.next())
                continue
            self._client = client
            self._lost.clear()
            self._backoff.reset()
            self._set_nodelay(client)
            self._window = self._receive_window(client)
            self._stats.connected = True
            if self._subscriptions:
                client.on_message = self._on_message
                client.subscribe([gmqtt.Subscription(t, qos=1) for t in self._subscriptions])
            log.info("northbound: connected to %s (MQTT %s)", self._where(), self.protocol)
            try:
                await self._call_on_connect()
                self._first_attempt.set()
                self._wake.set()  # whatever waited for this connection goes now
                await self._send_loop(client)
            except Exception as exc:  # a bug must not silence the gateway for good: say so, reconnect
                log.exception("northbound: sending to %s failed; reconnecting", self._where())
                self._stats.last_error = f"send failed: {type(exc).__name__}: {exc}"
                await asyncio.sleep(self._backoff.next())
            finally:
                self._stats.connected = False
            if self._stopping:
                return
            self._abort(client)  # e.g. after a server DISCONNECT the socket may still be open
            self._connection_lost()

    async def _connect(self, client: Client, version: int) -> None:
        """gmqtt's connect, bounded, and failing fast when the broker drops us before CONNACK."""
        connect = asyncio.ensure_future(
            client.connect(self.host, self.port, ssl=self._ssl, keepalive=self.keepalive, version=version))
        dropped = asyncio.ensure_future(client.gg_lost.wait())
        try:
            done, _ = await asyncio.wait({connect, dropped}, timeout=self.connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (connect, dropped):
                if not task.done():
                    task.cancel()
        if connect in done:
            connect.result()
        elif dropped in done:
            raise DroppedBeforeConnack(loss_cause(client))
        else:
            raise asyncio.TimeoutError()

    def _connect_failed(self, client: Client, exc: BaseException) -> None:
        self._stats.connect_failures += 1
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = f"TLS certificate rejected: {exc.verify_message} (check tls.ca_file / the broker certificate)"
        elif isinstance(exc, ssl.SSLError):
            reason = f"TLS handshake failed: {exc.reason or exc} (check tls.cert_file/key_file and the broker's require_certificate)"
        elif isinstance(exc, MQTTConnectError):
            reason = f"broker refused the connection: {exc} (check username/password, client id and the broker ACL)"
        elif isinstance(exc, DroppedBeforeConnack):
            reason = (f"the broker closed the connection before CONNACK ({exc})"
                      + ("; with TLS this usually means it rejected our client certificate: check tls.cert_file/"
                         "key_file are signed by a CA the broker trusts (its cafile)" if self._ssl else
                         "; is this a TLS listener? then use mqtts://"))
        elif isinstance(exc, asyncio.TimeoutError):
            reason = f"no CONNACK within {self.connect_timeout} s"
            if self.protocol == "5":
                reason += " (an MQTT 3.1.1-only broker such as amqtt ignores an MQTT 5 CONNECT with a will: set protocol '3.1.1')"
        if reason != self._stats.last_error:
            log.warning("northbound: cannot connect to %s: %s; retrying with backoff", self._where(), reason)
        self._stats.last_error = reason
        self._abort(client)

    @staticmethod
    def _abort(client: Client) -> None:
        gq.abort(client)

    def _connection_lost(self) -> None:
        self._client = None
        self._stats.reconnects += 1
        self._feeds.clear()  # the next birth publishes its state again, whole
        self._held = None  # still taken from the outbox: the rewind below puts it back in order
        rewound = sum(q.rewind() for q in self._queues)
        self._stats.resent += rewound
        self._inflight.clear()
        self._stats.last_error = "connection lost"
        log.warning("northbound: lost connection to %s; %d queued, %d unacknowledged will be re-sent",
                    self._where(), len(self._outbox), rewound)

    def _disconnected(self, client, packet, exc=None) -> None:
        client.gg_lost.set()
        if client is self._client:
            self._lost.set()
            self._wake.set()

    async def _call_on_connect(self) -> None:
        if self._on_connect is None:
            return
        self._in_on_connect = True
        try:
            result = self._on_connect()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("northbound: on_connect callback failed")
        finally:
            self._in_on_connect = False

    @staticmethod
    def _set_nodelay(client: Client) -> None:
        sock = gq.transport(client).get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _receive_window(self, client: Client) -> int:
        """QoS 1 messages we may have in flight: our cap, below the broker's Receive Maximum."""
        return max(1, min(self.max_inflight, gq.broker_receive_maximum(client) - 1))

    # ------------------------------------------------------------------ sending

    def _acked(self, client: Client, mid: int) -> None:
        if client is not self._client or self._lost.is_set():
            return  # a late PUBACK of a lost connection: its mids mean nothing now, the message gets re-sent
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        source, ref, msg = entry
        reason = gq.puback_reason(client)
        if reason >= 0x80:
            # re-sending cannot help: count it as dropped, say once per topic why
            name = PUBACK_REFUSALS.get(reason, "refused")
            self._stats.dropped[f"refused_{name.replace(' ', '_')}"] += 1
            if (msg.topic, reason) not in self._refused_topics:
                self._refused_topics.add((msg.topic, reason))
                log.error("northbound: broker %s refused a publish to %r: %s (0x%02x); check the broker ACL for user %r",
                          self._where(), msg.topic, name, reason, self._username)
        else:
            self._stats.acked += 1
            if msg.born:
                self.latency.observe(time.time() - msg.born)
        if source is not None:
            source.done(ref)
        self._wake.set()

    async def _send_loop(self, client: Client) -> None:
        """Send while connected; packets of one pass go out in 64 kB writes, not one syscall each."""
        transport = gq.transport(client)
        bucket = _TokenBucket(self.rate_limit) if self.rate_limit else None
        while not self._lost.is_set():
            await self._wake.wait()
            self._wake.clear()
            out = bytearray()
            while not self._lost.is_set() and not transport.is_closing():
                room = self._window - len(self._inflight)
                if room <= 0 and not self._values_may_pass():
                    break  # an ack will wake us
                if len(out) >= _WRITE_CHUNK:
                    out = self._write(client, out)
                if transport.get_write_buffer_size() > self.max_write_buffer:
                    out = self._write(client, out)
                    await asyncio.sleep(0.002)
                    continue
                if bucket is not None and (delay := bucket.wait_time()) > 0:
                    out = self._write(client, out)
                    await asyncio.sleep(delay)
                    continue
                sent = self._send_burst(client, out, room, 1 if bucket is not None else _BURST)  # paced: one per check
                if not sent:
                    break
                if bucket is not None:
                    bucket.spend()
            self._write(client, out)
            if transport.is_closing():
                self._lost.set()

    @staticmethod
    def _write(client: Client, out: bytearray) -> bytearray:
        if out:
            gq.send_raw(client, out)
        return bytearray()

    def _next(self) -> tuple[Outbox | None, tuple[int, Message] | None]:
        """Birth/final messages first, then seq-less state, then the values in order."""
        if self._priority:
            return None, (-1, self._priority.popleft())
        while self._feeds:
            msg = next(self._feeds[0], None)
            if msg is not None:
                return None, (-1, msg)
            self._feeds.popleft()
        for q in self._queues:
            item = q.take()
            if item is not None:
                return q, item
        return None, None

    def oldest_queued_age(self) -> float:
        """Seconds the oldest value still waiting (queued or unacknowledged) has waited; 0 when none."""
        borns = [m.born for _s, _r, m in self._inflight.values() if m.born]
        for q in self._queues:
            b = q.oldest_born()
            if b:
                borns.append(b)
        return max(0.0, time.time() - min(borns)) if borns else 0.0

    def _queued(self) -> int:
        return len(self._priority) + len(self._feeds) + sum(len(q) for q in self._queues)

    def _send_burst(self, client: Client, out: bytearray, room: int, limit: int = _BURST) -> int:
        """Encode up to ``limit`` PUBLISHes into ``out`` (stopping at a write chunk's worth), at most ``room``
        of them QoS 1 (the free window); how many. QoS 0 counts as delivered here (written in this loop step).

        State (status, heartbeat, the birth's catalog) goes first, in order. Only the catalog feed may be
        overtaken, by values, while its QoS 1 messages fill the window: 50,000 catalog entries at a broker's
        Receive Maximum of 20 held every value back for seconds (and queued them in memory). Values never
        overtake each other: a QoS 1 value that finds the window full is held and goes first next time."""
        if self._priority or self._feeds or self._side is not None and len(self._side):
            if room > 0:
                n = 0
                while n < min(room, limit) and len(out) < _WRITE_CHUNK:
                    source, item = self._next()
                    if item is None:
                        break
                    self._send(client, source, *item, out)
                    n += 1
                return n
            if not self._values_may_pass():
                return 0
        return self._send_values(client, out, room, limit)

    def _values_may_pass(self) -> bool:
        """Only the catalog feed is waiting for the window, and a value is ready that does not need it."""
        return (not self._priority and not (self._side is not None and len(self._side)) and self._held is None
                and len(self._outbox) > 0)

    def _send_values(self, client: Client, out: bytearray, room: int, limit: int) -> int:
        box = self._outbox
        take, done = box.take, box.done
        pop0 = box.pop_qos0  # a QoS 0 value taken and done in one call (memory queue, spool; never Sparkplug)
        v5 = self.protocol == "5"
        n = plain = 0
        # one clock read per pass: QoS 0 values count as written here; values of one batch share a ``born``,
        # so the latency histogram gets one observation per run of equal ``born`` (observe_n), not one per value
        now, observe_n = time.time(), self.latency.observe_n
        run_born, run = 0.0, 0
        ref: int | None
        try0 = True  # tried while QoS 0 values come: a run of QoS 1 ones goes straight to take()
        while n < limit and len(out) < _WRITE_CHUNK:
            if self._held is not None:
                (ref, msg), self._held = self._held, None
            elif try0 and (popped := pop0()) is not None:
                ref, msg = None, popped  # already done: nothing to re-send for a QoS 0 value once written
            else:
                item = take()
                if item is None:
                    break
                ref, msg = item
                try0 = not msg.qos
            if msg.qos:
                assert ref is not None  # pop_qos0 hands out QoS 0 values only
                if room <= 0:
                    self._held = (ref, msg)  # taken, so a connection loss rewinds it like any unacknowledged one
                    break
                self._send(client, box, ref, msg, out)
                room -= 1
                n += 1
                continue
            append_publish0(out, msg.topic, msg.payload, msg.retain, v5, msg.expiry)
            if ref is not None:
                done(ref)
            born = msg.born
            if born == run_born:
                run += 1
            else:
                if run and run_born:
                    observe_n(now - run_born, run)
                run_born, run = born, 1
            plain += 1
            n += 1
        if run and run_born:
            observe_n(now - run_born, run)
        self._stats.published += plain  # (_send counts the QoS 1 ones)
        return n

    def _send(self, client: Client, source: Outbox | None, ref: int, msg: Message, out: bytearray) -> None:
        """Encode one PUBLISH into ``out``; QoS 0 counts as delivered here (written in the same loop step)."""
        mid = gq.new_mid(client) if msg.qos else None
        packet = publish_head(msg.topic, len(msg.payload), msg.qos, msg.retain, mid, self.protocol == "5", msg.expiry)
        packet += msg.payload
        out += packet
        self._stats.published += 1
        if msg.qos:
            gq.track(client, mid, packet)
            self._inflight[mid] = (source, ref, msg)
        else:
            if msg.born:
                self.latency.observe(time.time() - msg.born)
            if source is not None:
                source.done(ref)


def _matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter match (+ one level, # the rest)."""
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


class _TokenBucket:
    """At most ``rate`` messages per second, bursts of up to 0.1 s worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * 0.1)
        self.tokens = self.capacity
        self.t = time.monotonic()

    def wait_time(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
        self.t = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def spend(self) -> None:
        self.tokens -= 1


__all__ = ["MqttPublisher", "NorthboundConfigError", "parse_url", "ssl_context", "Message"]
