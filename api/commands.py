"""Publishing device commands to MQTT: one connection per API process, kept up in the background.

:meth:`CommandPublisher.run` connects, waits until the connection drops, and reconnects with
jittered exponential backoff, forever (until cancelled). :meth:`CommandPublisher.publish` sends
one validated :class:`~schema.device_messages.DeviceCommand` to the device's command topic at
QoS 1 and returns once the broker has acknowledged it (PUBACK); if the broker is not reachable
within the timeout it raises :class:`~api.errors.Unavailable` (a 503: try again), so a command
is never reported as sent when it was not. Commands are not retained: a device that is offline
does not act on a stale command when it comes back.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import aiomqtt

from api.errors import Unavailable
from api.live.feed import reconnect_backoff
from schema.credentials import BrokerAuth
from schema.device_messages import DeviceCommand
from schema.topics import MqttTopics

log = logging.getLogger(__name__)


class CommandPublisher:
    def __init__(
        self,
        host: str,
        port: int,
        topics: MqttTopics,
        *,
        timeout_s: float,
        auth: BrokerAuth | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._auth = auth or BrokerAuth()
        self._tls_context = self._auth.ssl_context()
        self._topics = topics
        self._timeout_s = timeout_s
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self.published = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def topic(self, device_id: str) -> str:
        return self._topics.commands(device_id)

    async def run(self) -> None:
        backoff = reconnect_backoff()
        while True:
            auth = self._auth
            client = aiomqtt.Client(
                self._host,
                self._port,
                username=auth.username,
                password=auth.password,
                identifier=f"wattstream-api-{uuid.uuid4().hex[:12]}",
                keepalive=30,
                timeout=self._timeout_s,
                tls_context=self._tls_context,
            )
            try:
                async with client:
                    self._client = client
                    self._connected.set()
                    backoff.reset()
                    log.info("commands: connected to MQTT %s:%d", self._host, self._port)
                    # Nothing is subscribed; the iterator ends with MqttError on a disconnect.
                    async for _message in client.messages:
                        pass
            except (aiomqtt.MqttError, OSError) as exc:  # retriable: the network or broker
                attempt = backoff.attempts + 1
                log.warning("commands: MQTT connection failed (%s); attempt %d", exc, attempt)
            finally:
                self._connected.clear()
                self._client = None
            await asyncio.sleep(backoff.next_delay())

    async def publish(self, device_id: str, command: DeviceCommand) -> str:
        """Publish at QoS 1 and wait for the PUBACK; return the topic."""
        topic = self.topic(device_id)
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._connected.wait()
                client = self._client
                if client is None:
                    raise Unavailable("the MQTT connection dropped; try again")
                await client.publish(topic, command.model_dump_json().encode(), qos=1)
        except TimeoutError as exc:
            raise Unavailable(
                f"the MQTT broker did not acknowledge within {self._timeout_s:g}s; "
                "the command may not have been delivered"
            ) from exc
        except aiomqtt.MqttError as exc:
            raise Unavailable(f"the MQTT broker refused the command: {exc}") from exc
        self.published += 1
        log.info("commands: %s -> %s (%s)", command.action, topic, command.command_id)
        return topic
