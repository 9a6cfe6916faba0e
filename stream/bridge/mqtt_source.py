"""Receives device messages from MQTT with manual acknowledgement (paho-mqtt 2.x, MQTT 5).

paho runs its network loop in its own thread; messages cross into asyncio through a queue.
(paho's external-loop API on the asyncio thread was tried: slower, as all of paho's per-packet
parsing then competes with the bridge for the one thread.)
A message is acknowledged (PUBACK) only when :meth:`MqttSource.ack` is called, which the
bridge does after Kafka has acknowledged it, so a crash before that makes the broker
redeliver it to the persistent session: a fixed client id, ``clean_start`` off and a session
expiry interval (MQTT 5's form of "clean session off").

The connection's *receive maximum* is the bridge's in-flight window: the broker sends at most
that many unacknowledged messages and queues the rest for the session. That bound is also what
keeps the hand-over queue below small and bounded, without blocking paho's thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

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


@dataclass(frozen=True, slots=True)
class MqttMessage:
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
        # Unbounded on purpose: the receive maximum bounds what the broker sends unacked.
        self._queue: asyncio.Queue[MqttMessage | BaseException] = asyncio.Queue()
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: collections.deque[MqttMessage | BaseException] = collections.deque()
        self._inbox_lock = threading.Lock()
        self._wake_pending = False
        self._settled = asyncio.Event()
        """Set once subscribed, or once connecting or subscribing failed (``_failure``)."""
        self._failure: MqttUnavailable | None = None
        self._lost = False
        """Set (from paho's thread) once the connection failed or dropped."""
        self._last_arrival = time.monotonic()
        """When paho last handed over a message (written from paho's thread)."""
        self._gone = threading.Event()
        """Set (from paho's thread) once the socket is closed, e.g. after our DISCONNECT."""
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
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry_s
        properties.ReceiveMaximum = self._receive_maximum
        try:
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
        self._client.loop_start()
        try:
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
        """Disconnect (the broker keeps the session) and stop paho's thread; idempotent."""
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
        # Queued after every PUBACK already given to paho, so those reach the broker first.
        self._client.disconnect()
        if connected:
            # Stopping paho's thread before it wrote them would drop the PUBACKs still queued
            # (the broker then delivers those messages again: duplicates after a clean stop).
            await asyncio.to_thread(self._gone.wait, _CLOSE_TIMEOUT_S)
        await asyncio.to_thread(self._client.loop_stop)

    def ack(self, message: MqttMessage) -> None:
        """Acknowledge one message (PUBACK); a no-op for QoS 0 and on a dead connection."""
        result = self._client.ack(message.mid, message.qos)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.debug("PUBACK of mid %d not sent: %s", message.mid, result)

    async def messages(self) -> AsyncIterator[MqttMessage]:
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    # -- paho callbacks, on paho's thread ---------------------------------------------------
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
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._settled.set)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers refuse such topics; if one passes, dead-letter it
            topic = repr(msg._topic)  # the raw bytes paho could not decode
        self._last_arrival = time.monotonic()
        self._hand_over(MqttMessage(topic, bytes(msg.payload), msg.mid, msg.qos, msg.dup))

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._gone.set()
        if not self._closed:
            self._fail(MqttUnavailable(f"disconnected: {reason}"))

    def _fail(self, failure: MqttUnavailable) -> None:
        """Report a failure: to ``__aenter__`` if still connecting, else to ``messages()``."""
        assert self._loop is not None
        self._lost = True

        def settle() -> None:
            if not self._settled.is_set():
                self._failure = failure
                self._settled.set()

        try:
            self._loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: the process is exiting
            return
        self._hand_over(failure)

    def _hand_over(self, item: MqttMessage | BaseException) -> None:
        """Pass ``item`` to the event loop, waking it only if it is not already due to look:
        under load one wake-up carries many messages."""
        assert self._loop is not None
        with self._inbox_lock:
            self._inbox.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._take_inbox)
        except RuntimeError:  # the loop is closed: the process is exiting
            log.debug("dropping %r: event loop closed", item)

    def _take_inbox(self) -> None:
        """On the event loop: move what paho handed over into the queue, in order."""
        with self._inbox_lock:
            items = list(self._inbox)
            self._inbox.clear()
            self._wake_pending = False
        for item in items:
            self._queue.put_nowait(item)
