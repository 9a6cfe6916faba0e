"""Receives device messages from MQTT with manual acknowledgement (paho-mqtt 2.x, MQTT 5).

paho runs on the bridge's event loop, through its external-loop API (as aiomqtt drives it):
the loop watches paho's socket and calls ``loop_read`` when it is readable (several packets
per wake-up), ``loop_write`` once per loop turn when paho has something to send, and
``loop_misc`` every second for the keepalive. No thread, so no lock or wake-up per message:
a received message is a tuple appended to a deque. (paho's own network thread cost about as
much CPU per message as its parsing: a select per packet, a thread hop per message, a wake-up
byte per acknowledgement; bench/bridge_throughput.py measured 0.67 of the CPU per message
without it.)

A message is acknowledged (PUBACK) only when :meth:`MqttSource.ack` is called, which the
bridge does after Kafka has acknowledged it, so a crash before that makes the broker
redeliver it to the persistent session: a fixed client id, ``clean_start`` off and a session
expiry interval (MQTT 5's form of "clean session off"). The acknowledgements given during one
loop turn are written together at its end.

The connection's *receive maximum* is the bridge's in-flight window: the broker sends at most
that many unacknowledged messages and queues the rest for the session. That bound is also what
keeps the deque of received messages small.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, NamedTuple, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from schema.credentials import BrokerAuth
from stream.bridge.errors import MqttUnavailable

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 30.0
_CLOSE_TIMEOUT_S = 5.0
"""At a clean stop, how long to wait for the broker to go quiet, then for paho to write our
PUBACKs and DISCONNECT."""
_QUIET_BEFORE_CLOSE_S = 0.3
"""A clean stop disconnects once no message has arrived for this long (or after the timeout)."""
_MISC_EVERY_S = 1.0
"""How often paho's keepalive bookkeeping (``loop_misc``) runs."""
_READS_PER_WAKE = 1000
"""At most this many packets read each time the socket is readable, so the rest of the loop
(the forwarder, Kafka's client) gets its turn."""


class MqttMessage(NamedTuple):
    """One received message (a named tuple: one is made per message, cheaply)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool = False


class MqttSource:
    """One persistent-session MQTT subscription, owned by an ``async with``."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        subscriptions: Sequence[str],
        *,
        receive_maximum: int,
        session_expiry_s: int = 0xFFFFFFFF,
        keepalive_s: int = 30,
        auth: BrokerAuth | None = None,
    ) -> None:
        self._host, self._port, self._keepalive = host, port, keepalive_s
        self._subscriptions = list(subscriptions)
        self._receive_maximum = receive_maximum
        self._session_expiry_s = session_expiry_s
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        auth = auth or BrokerAuth()
        if auth.username is not None:
            self._client.username_pw_set(auth.username, auth.password)
        tls_context = auth.ssl_context()
        if tls_context is not None:
            self._client.tls_set_context(tls_context)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_socket_register_write
        self._client.on_socket_unregister_write = self._on_socket_unregister_write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._watched: Any = None
        """paho's socket while the event loop watches it."""
        self._flush_due = False
        self._misc: asyncio.TimerHandle | None = None
        # Unbounded on purpose: the receive maximum bounds what the broker sends unacked.
        self._arrived: collections.deque[MqttMessage | BaseException] = collections.deque()
        self._arrival = asyncio.Event()
        """Set while ``_arrived`` may hold something (the reader's wake-up)."""
        self._settled = asyncio.Event()
        """Set once subscribed, or once connecting or subscribing failed (``_failure``)."""
        self._failure: MqttUnavailable | None = None
        self._lost = False
        """Set once the connection failed or dropped."""
        self._last_arrival = time.monotonic()
        """When paho last handed over a message."""
        self._gone = asyncio.Event()
        """Set once the socket is closed, e.g. after our DISCONNECT."""
        self._entered = False
        self._closed = False
        self.session_present: bool | None = None
        """Whether the broker still had this client's session (known once connected)."""

    @property
    def subscribed(self) -> bool:
        return (
            self._settled.is_set() and self._failure is None and not self._lost and not self._closed
        )

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("MqttSource is not reusable; create a new one")
        self._entered = True
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry_s
        properties.ReceiveMaximum = self._receive_maximum
        try:
            # Blocking (name lookup, TCP, TLS handshake); paho only queues the CONNECT packet.
            await asyncio.to_thread(
                self._client.connect,
                self._host,
                self._port,
                self._keepalive,
                clean_start=False,
                properties=properties,
            )
        except OSError as exc:
            raise MqttUnavailable(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        try:
            self._watch()
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await self._settled.wait()
        except TimeoutError as exc:
            await self.aclose()
            raise MqttUnavailable(
                f"no CONNACK and SUBACK within {_CONNECT_TIMEOUT_S:.0f} s"
            ) from exc
        except BaseException:
            await self.aclose()
            raise
        if self._failure is not None:
            await self.aclose()
            raise self._failure
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Disconnect (the broker keeps the session) and stop watching the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        connected = self._client.is_connected()
        if connected:
            # Our last PUBACKs free the broker's window for this session and it sends more
            # messages at once. Closing a socket whose received data is unread makes the kernel
            # reset the connection (RST instead of FIN), and the broker may then discard the
            # PUBACKs it had not read yet and deliver those messages again: duplicates after a
            # clean stop. The window is bounded (receive maximum): wait until it is full and
            # paho has read everything, i.e. until nothing has arrived for a moment.
            step_s = 0.05
            for _ in range(round(_CLOSE_TIMEOUT_S / step_s)):
                if time.monotonic() - self._last_arrival >= _QUIET_BEFORE_CLOSE_S:
                    break
                await asyncio.sleep(step_s)
        # Queued after every PUBACK already given to paho, so those reach the broker first;
        # paho closes the socket once it has written it.
        self._client.disconnect()
        if connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await self._gone.wait()
        if self._misc is not None:
            self._misc.cancel()
        sock = self._watched
        if sock is not None:  # never connected, or the broker did not take our DISCONNECT
            self._unwatch(sock)
            sock.close()

    def ack(self, message: MqttMessage) -> None:
        """Acknowledge one message (PUBACK, written at the end of this loop turn); a no-op for
        QoS 0 and on a dead connection."""
        result = self._client.ack(message.mid, message.qos)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.debug("PUBACK of mid %d not sent: %s", message.mid, result)

    async def messages(self) -> AsyncIterator[MqttMessage]:
        arrived, arrival = self._arrived, self._arrival
        while True:
            if not arrived:
                arrival.clear()
                await arrival.wait()
                continue
            item = arrived.popleft()
            if isinstance(item, BaseException):
                raise item
            yield item

    # -- the event loop driving paho -------------------------------------------------------
    def _watch(self) -> None:
        """Start watching paho's socket (after ``connect``, on the event loop)."""
        assert self._loop is not None
        sock = self._client.socket()
        if sock is None:
            raise MqttUnavailable("the connection closed while it was being made")
        self._watched = sock
        self._loop.add_reader(sock, self._read)
        # The CONNECT packet was queued on the connecting thread: write it now.
        self._flush_due = True
        self._loop.call_soon(self._flush)
        self._misc = self._loop.call_later(_MISC_EVERY_S, self._keep_alive)

    def _unwatch(self, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._watched = None

    def _read(self) -> None:
        """The socket is readable: read packets while they bring messages."""
        client, arrived, sock = self._client, self._arrived, self._watched
        if sock is None:
            return
        # TLS decrypts whole records: packets already decrypted wait in the TLS buffer, which
        # does not make the socket readable again.
        tls, waiting = isinstance(sock, ssl.SSLSocket), len(arrived)
        try:
            for _ in range(_READS_PER_WAKE):
                before = len(arrived)
                if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break  # the connection is gone: paho called on_disconnect
                if len(arrived) == before and not (tls and sock.pending() > 0):
                    break  # not a message (or nothing left to read)
            else:
                if tls:  # the rest of the TLS buffer next turn
                    assert self._loop is not None
                    self._loop.call_soon(self._read)
        except (OSError, ValueError) as exc:  # paho reports most failures as return codes
            self._fail(MqttUnavailable(f"reading from the broker failed: {exc!r}"))
        if len(arrived) > waiting:
            self._last_arrival = time.monotonic()
            self._arrival.set()

    def _flush(self) -> None:
        """Write what paho queued this loop turn (PUBACKs, SUBSCRIBE, DISCONNECT) at once."""
        self._flush_due = False
        sock = self._watched
        if sock is None:
            return
        self._client.loop_write()
        if self._client.want_write() and self._watched is sock:  # the socket's buffer is full
            assert self._loop is not None
            self._loop.add_writer(sock, self._write_when_writable)

    def _write_when_writable(self) -> None:
        self._client.loop_write()  # unregisters (below) once everything is written

    def _keep_alive(self) -> None:
        assert self._loop is not None
        if self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._misc = self._loop.call_later(_MISC_EVERY_S, self._keep_alive)

    def _on_loop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop: now if called there, else soon (paho calls some
        callbacks on the thread that connects)."""
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            callback()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
            self._loop.call_soon_threadsafe(callback)

    # -- paho callbacks ---------------------------------------------------------------------
    def _on_socket_register_write(self, _client: paho.Client, _userdata: Any, _sock: Any) -> None:
        if not self._flush_due:
            self._flush_due = True
            self._on_loop(self._schedule_flush)

    def _schedule_flush(self) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._flush)

    def _on_socket_unregister_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        if sock is self._watched:
            assert self._loop is not None
            self._loop.remove_writer(sock)

    def _on_socket_close(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        if sock is self._watched:
            self._unwatch(sock)

    def _on_connect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._fail(MqttUnavailable(f"connection refused: {reason}"))
            return
        self.session_present = bool(flags.session_present)
        log.info("connected to MQTT (session present: %s)", self.session_present)
        # Subscribing again to an existing subscription of the session is harmless; it also
        # makes the broker send the retained status and birth messages once more.
        client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in self._subscriptions])

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _p: Any
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            self._fail(MqttUnavailable(f"subscription refused: {reasons}"))
            return
        log.info("subscribed to %s", ", ".join(self._subscriptions))
        self._settled.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers refuse such topics; if one passes, dead-letter it
            topic = repr(msg._topic)  # the raw bytes paho could not decode
        self._arrived.append(MqttMessage(topic, bytes(msg.payload), msg.mid, msg.qos, msg.dup))

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._on_loop(self._gone.set)
        if not self._closed:
            self._fail(MqttUnavailable(f"disconnected: {reason}"))

    def _fail(self, failure: MqttUnavailable) -> None:
        """Report a failure: to ``__aenter__`` if still connecting, else to ``messages()``."""
        self._lost = True

        def settle() -> None:
            if not self._settled.is_set():
                self._failure = failure
                self._settled.set()
            self._arrived.append(failure)
            self._arrival.set()

        self._on_loop(settle)
