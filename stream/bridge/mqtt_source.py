"""Receives device messages from MQTT with manual acknowledgement (paho-mqtt 2.x).

paho runs its network loop in its own thread; messages cross into asyncio through a queue.
A message is acknowledged (PUBACK) only when :meth:`MqttSource.ack` is called, which the
bridge does after Kafka has acknowledged it, so a crash before that makes the broker
redeliver it to the persistent session (fixed client id, clean session off).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)


class BridgeError(Exception):
    """Base of the bridge's errors."""


class MqttUnavailable(BridgeError):
    """The MQTT broker refused or dropped the connection (retriable)."""


@dataclass(frozen=True, slots=True)
class MqttMessage:
    topic: str
    payload: bytes
    mid: int
    qos: int


class MqttSource:
    """One persistent-session MQTT subscription, owned by an ``async with``."""

    def __init__(
        self, host: str, port: int, client_id: str, subscriptions: list[str], queue_size: int
    ) -> None:
        self._host, self._port = host, port
        self._subscriptions = subscriptions
        self._queue: asyncio.Queue[MqttMessage | BaseException] = asyncio.Queue(queue_size)
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        # The broker may send this many unacknowledged QoS 1 messages; it queues the rest.
        self._client.max_inflight_messages_set(queue_size)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._entered = False
        self._closed = False

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("MqttSource is not reusable; create a new one")
        self._entered = True
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._client.connect, self._host, self._port, 30)
        except OSError as exc:
            raise MqttUnavailable(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        self._client.loop_start()
        try:
            async with asyncio.timeout(30):
                await self._connected.wait()
        except TimeoutError as exc:
            await self.aclose()
            raise MqttUnavailable("no CONNACK and SUBACK within 30 s") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def ack(self, message: MqttMessage) -> None:
        self._client.ack(message.mid, message.qos)

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
            self._hand_over(MqttUnavailable(f"connection refused: {reason}"))
            return
        log.info("connected to MQTT (session present: %s)", flags.session_present)
        client.subscribe([(topic, 1) for topic in self._subscriptions])

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _p: Any
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            self._hand_over(MqttUnavailable(f"subscription refused: {reasons}"))
            return
        log.info("subscribed to %s", ", ".join(self._subscriptions))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        self._hand_over(MqttMessage(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if not self._closed:
            self._hand_over(MqttUnavailable(f"disconnected: {reason}"))

    def _hand_over(self, item: MqttMessage | BaseException) -> None:
        assert self._loop is not None
        # Blocks paho's thread while the queue is full (backpressure towards the broker), but
        # never past aclose(), which joins this thread.
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while True:
            try:
                future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if self._closed:
                    future.cancel()
                    return
            else:
                return
