"""MQTT connections driven by the running asyncio loop: paho-mqtt's external-loop mode.

Thousands of connections share one event loop: each paho client's socket is registered with
the loop (``add_reader``/``add_writer``) and paho does the protocol (packet ids, QoS 1 resends
after a reconnect, keepalive pings, TLS). No thread per connection and no future per message:
publishing is a non-blocking call, a PUBACK lowers the shared :class:`Backlog`, and the
publisher waits on that backlog when the broker falls behind. Only the TCP (and TLS) connect,
which blocks in paho, runs in a worker thread; paho's socket callbacks from that thread are
handed to the loop thread.

Each connection reconnects by itself, with jittered exponential backoff, after losing the
broker (or after :meth:`MqttConnection.abort`, which drops the TCP connection without a
DISCONNECT, as a crash would, so the broker publishes the last will).

A PUBACK does not mean the broker has the message on disk: Mosquitto 2.0 acknowledges from
memory and saves its database afterwards, so a broker killed right after acknowledging can lose
a message it has not yet handed to a subscriber. A connection therefore keeps the (non-retained)
messages acknowledged in the last ``resend_window_s`` seconds and, when the connection drops,
publishes them again after the reconnect, before anything newer: duplicates, which the pipeline
absorbs (readings are keyed by device and time), instead of a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from schema.backoff import Backoff, Jitter
from schema.credentials import BrokerAuth
from simulator.errors import BrokerRefused, BrokerUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


def _backoff() -> Backoff:
    return Backoff(MIN_BACKOFF_S, MAX_BACKOFF_S, jitter=Jitter.SPREAD)


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Where the broker is and how to authenticate to it."""

    host: str = "127.0.0.1"
    port: int = 1883
    auth: BrokerAuth = field(default_factory=BrokerAuth)
    keepalive_s: int = 60


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes


class Backlog:
    """Messages published and not yet acknowledged, shared by many connections."""

    def __init__(self, high: int) -> None:
        self.high = high
        self.low = high // 2
        self.count = 0
        self.acked = 0
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self) -> None:
        self.count += 1
        self._empty.clear()
        if self.count >= self.high:
            self._room.clear()

    def done(self, n: int = 1) -> None:
        self.count -= n
        self.acked += n
        if self.count <= self.low:
            self._room.set()
        if self.count <= 0:
            self._empty.set()

    async def room(self) -> None:
        """Return when fewer than ``high`` messages wait for an acknowledgement."""
        if not self._room.is_set():
            await self._room.wait()

    async def drained(self) -> None:
        """Return when every message has been acknowledged."""
        await self._empty.wait()


class _State(Enum):
    NEW = "new"
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    CLOSING = "closing"
    CLOSED = "closed"


class MqttConnection:
    """One MQTT connection; not reusable. ``on_up`` runs after every CONNACK (subscribe and
    publish births there); ``on_message`` gets every message that arrives."""

    def __init__(
        self,
        client_id: str,
        broker: BrokerOptions,
        backlog: Backlog,
        *,
        will: Will | None = None,
        on_up: Callable[[MqttConnection], None] | None = None,
        on_message: Callable[[str, bytes], None] | None = None,
        on_acked: Callable[[object], None] | None = None,
        max_inflight: int = 100,
        resend_window_s: float = 0.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``tls_context``: shared by a fleet's connections; by default built from
        ``broker.auth``."""
        self.client_id = client_id
        self._broker = broker
        self._backlog = backlog
        self._on_up = on_up
        self._on_message_cb = on_message
        self._on_acked = on_acked
        self._sent: dict[int, tuple[str, bytes, bool, object]] = {}
        """Messages handed to paho, by packet id, until their PUBACK (when a tag or the resend
        window needs them)."""
        self._resend_window_s = resend_window_s
        self._recent: deque[tuple[float, tuple[str, bytes, bool, object]]] = deque()
        """(PUBACK time, message) of the non-retained messages acknowledged lately."""
        self.resent = 0
        self._state = _State.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._connected: asyncio.Future[None] | None = None
        self._waiting: deque[tuple[str, bytes, bool, object]] = deque()
        """Published by the caller, not yet handed to paho (window full, or not connected)."""
        self._max_inflight = max_inflight
        self._in_paho = 0
        """Handed to paho and not acknowledged: on the wire, or to be resent after a reconnect."""
        self._reconnect_task: asyncio.Task[None] | None = None
        self._down_for_s = 0.0
        self._sock_closed = asyncio.Event()
        self.connects = 0
        self.unacked = 0
        """Messages published on this connection and not yet acknowledged."""
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            reconnect_on_failure=False,
        )
        # paho's own in-flight window rescans its whole queue on every PUBACK (O(n) per ack);
        # unlimited there, the window is kept here instead (see _pump), with an O(1) deque.
        client.max_inflight_messages_set(0)
        auth = broker.auth
        if auth.username is not None:
            client.username_pw_set(auth.username, auth.password)
        if auth.tls:
            client.tls_set_context(tls_context or auth.ssl_context())
        if will is not None:
            client.will_set(will.topic, will.payload, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        self._client = client

    @property
    def is_up(self) -> bool:
        return self._state is _State.UP

    # -- lifetime -----------------------------------------------------------------------------

    async def start(self, *, retry: bool = False) -> None:
        """Connect; raise :class:`BrokerUnavailable` or :class:`BrokerRefused` if that fails
        (with ``retry``, keep trying while the broker is unavailable, with backoff)."""
        if self._state is not _State.NEW:
            raise RuntimeError("MqttConnection is not reusable; create a new one")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._client.connect_async(self._broker.host, self._broker.port, self._broker.keepalive_s)
        backoff = _backoff()
        while True:
            try:
                await self._connect_once()
            except BrokerUnavailable as exc:
                if not retry:
                    raise
                delay = backoff.next_delay()
                log.warning("%s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
            else:
                return

    async def _connect_once(self) -> None:
        assert self._loop is not None
        self._state = _State.CONNECTING
        self._connected = self._loop.create_future()
        try:
            await asyncio.to_thread(self._client.reconnect)
        except (OSError, ssl.SSLError) as exc:
            self._state = _State.DOWN
            raise BrokerUnavailable(
                f"{self.client_id}: cannot connect to {self._broker.host}:{self._broker.port}: "
                f"{exc}"
            ) from exc
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self._connected
        except TimeoutError:
            self._state = _State.DOWN
            self._client.disconnect()
            raise BrokerUnavailable(
                f"{self.client_id}: no CONNACK in {CONNECT_TIMEOUT_S}s"
            ) from None

    def abort(self, *, down_for_s: float = 0.0) -> None:
        """Drop the TCP connection without a DISCONNECT (the broker publishes the last will);
        reconnect after ``down_for_s`` plus the usual backoff."""
        sock = self._client.socket()
        if self._state is _State.UP and isinstance(sock, socket.socket):
            self._down_for_s = down_for_s
            sock.shutdown(socket.SHUT_RDWR)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly: DISCONNECT goes out after everything already published (the
        owner waits for the acknowledgements first, see :meth:`Backlog.drained`). Idempotent."""
        if self._state in {_State.CLOSING, _State.CLOSED, _State.NEW}:
            self._state = _State.CLOSED
            return
        self._state = _State.CLOSING
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        if self._client.socket() is not None:
            self._sock_closed.clear()
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._sock_closed.wait()
        lost = self.unacked  # waiting ones included
        if lost:
            self._backlog.done(lost)
            log.warning("%s: closed with %d messages unacknowledged", self.client_id, lost)
        self._waiting.clear()
        self._sent.clear()
        self._recent.clear()
        self.unacked = 0
        self._state = _State.CLOSED

    # -- publishing ---------------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, tag: object = None
    ) -> None:
        """Publish at QoS 1 (at least once); returns at once. While the connection is down the
        message waits and goes out after the reconnect. A ``tag`` (not None) is handed to
        ``on_acked`` when the broker acknowledged the message."""
        if self._state in {_State.CLOSING, _State.CLOSED}:
            log.debug("%s: closed, not publishing to %s", self.client_id, topic)
            return
        self._backlog.add()
        self.unacked += 1
        if self._state is _State.UP and self._in_paho < self._max_inflight:
            self._send(topic, payload, retain, tag)
        else:
            self._waiting.append((topic, payload, retain, tag))

    def _send(self, topic: str, payload: bytes, retain: bool, tag: object) -> None:
        self._in_paho += 1
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if tag is not None or (self._resend_window_s and not retain):
            # Packet ids are unique among unacknowledged messages (at most max_inflight here).
            self._sent[info.mid] = (topic, payload, retain, tag)

    def _pump(self) -> None:
        """Hand waiting messages to paho while the in-flight window has room."""
        waiting = self._waiting
        while waiting and self._in_paho < self._max_inflight and self._state is _State.UP:
            self._send(*waiting.popleft())

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe at QoS 1 (call from ``on_up``: subscriptions end with the session)."""
        for i in range(0, len(topics), 500):
            self._client.subscribe([(topic, 1) for topic in topics[i : i + 500]])

    def misc(self) -> None:
        """Keepalive pings and timeouts; the owner calls this about once a second."""
        if self._state is _State.UP:
            self._client.loop_misc()

    # -- paho callbacks (on the loop thread, except the socket ones; see _call) -------------

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        if isinstance(sock, socket.socket) and sock.family in {socket.AF_INET, socket.AF_INET6}:
            # A reading goes out at once rather than waiting for the ACK of the previous
            # segment (Nagle): lower latency, and no loss of throughput in our measurements.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._call(self._loop.add_reader, sock, self._readable, sock)

    def _on_socket_close(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._call(self._loop.remove_reader, sock)
        self._call(self._sock_closed.set)

    def _on_socket_register_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        if self._state is _State.UP and threading.get_ident() == self._loop_thread:
            # Write at once: most publishes fit the socket buffer, which saves registering the
            # socket with the selector and removing it again for every message.
            self._client.loop_write()
            if not self._client.want_write() or self._client.socket() is not sock:
                return
        self._call(self._loop.add_writer, sock, self._client.loop_write)

    def _on_socket_unregister_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._call(self._loop.remove_writer, sock)

    def _readable(self, sock: Any) -> None:
        if self._client.socket() is not sock:
            return  # a stale registration of a socket paho has let go of
        tls = sock if isinstance(sock, ssl.SSLSocket) else None
        self._client.loop_read()
        # TLS sockets may hold decrypted bytes the selector cannot see.
        while tls is not None and tls.pending() and self._client.socket() is tls:
            self._client.loop_read()

    def _on_connect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Any,
    ) -> None:
        connected = self._connected
        if reason.is_failure:
            log.error("%s: broker refused the connection: %s", self.client_id, reason)
            if connected is not None and not connected.done():
                connected.set_exception(BrokerRefused(f"{self.client_id}: {reason}"))
            return
        self._state = _State.UP
        self.connects += 1
        if self._on_up is not None:
            self._on_up(self)
        self._pump()
        if connected is not None and not connected.done():
            connected.set_result(None)

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Any,
    ) -> None:
        if self._state in {_State.CLOSING, _State.CLOSED}:
            return
        connected = self._connected
        if connected is not None and not connected.done():
            connected.set_exception(BrokerUnavailable(f"{self.client_id}: disconnected: {reason}"))
            return
        was_up = self._state is _State.UP
        self._state = _State.DOWN
        if was_up and self._loop is not None:
            log.warning("%s: connection lost (%s); reconnecting", self.client_id, reason)
            self._resend_recent()
            self._reconnect_task = self._loop.create_task(
                self._reconnect(), name=f"reconnect-{self.client_id}"
            )

    def _resend_recent(self) -> None:
        """Queue the messages acknowledged within the resend window again, first in line."""
        since = time.monotonic() - self._resend_window_s
        again = [message for acked_at, message in self._recent if acked_at >= since]
        self._recent.clear()
        if not again:
            return
        self._waiting.extendleft(reversed(again))
        for _ in again:
            self._backlog.add()
        self.unacked += len(again)
        self.resent += len(again)
        log.info(
            "%s: %d messages acknowledged in the last %.1f s will be published again",
            self.client_id,
            len(again),
            self._resend_window_s,
        )

    async def _reconnect(self) -> None:
        backoff = _backoff()
        delay, self._down_for_s = self._down_for_s, 0.0
        while self._state is _State.DOWN:
            await asyncio.sleep(delay + backoff.next_delay())
            try:
                await self._connect_once()
            except BrokerUnavailable as exc:
                log.warning("%s: %s; retrying", self.client_id, exc)
                delay = 0.0
            except BrokerRefused:
                self._state = _State.DOWN
                backoff.to_ceiling()

    def _on_publish(
        self, _client: paho.Client, _userdata: Any, mid: int, _reason: Any, _props: Any
    ) -> None:
        self.unacked -= 1
        self._in_paho -= 1
        self._backlog.done()
        message = self._sent.pop(mid, None)
        if message is not None:
            _topic, _payload, retain, tag = message
            if tag is not None and self._on_acked is not None:
                self._on_acked(tag)
            if self._resend_window_s and not retain:
                now = time.monotonic()
                recent = self._recent
                recent.append((now, message))
                while recent and recent[0][0] < now - self._resend_window_s:
                    recent.popleft()
        if self._waiting:
            self._pump()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if self._on_message_cb is not None:
            self._on_message_cb(message.topic, bytes(message.payload))
