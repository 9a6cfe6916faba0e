"""How a fleet's devices map onto MQTT connections, and what they say on each.

Two modes (``--connections``):

* ``per-device``: one connection per device, client id ``{prefix}-{device_id}``. The most
  realistic: the device's last will is its own retained ``offline`` status, so the broker
  flips exactly that device when its connection dies. Costs a socket and a file descriptor per
  device on both ends.
* ``pooled:N``: N connections (``{prefix}-pool-{i}``), device ``k`` on connection ``k % N``,
  like devices behind a gateway. A connection has one last will, so it covers the gateway:
  ``{root}/gateways/{id}/status`` turns ``offline``; the devices' own retained statuses keep
  saying ``online`` until the simulator says otherwise, and consumers must combine the two
  (each device's birth names its ``gateway_id``), as Sparkplug B does with NDEATH.

On every (re)connect a connection publishes, for each of its devices, the retained birth
(:class:`schema.device_messages.DeviceBirth`) and status ``online`` (or ``offline`` for a device
told to stay offline), and subscribes to the devices' ``.../commands``. A clean shutdown
publishes ``offline`` for every device (and gateway) before disconnecting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

from schema.credentials import DeviceIdentities, device_password
from schema.device_messages import (
    AnomalyLabel,
    DeviceBirth,
    DeviceStatus,
    GatewayStatus,
    Location,
    Presence,
)
from schema.topics import MqttTopics
from schema.wire import Reading
from simulator.behaviour import Event
from simulator.connection import Backlog, BrokerOptions, MqttConnection, Will
from simulator.devices import DeviceSpec
from simulator.weather import region_of

log = logging.getLogger(__name__)

CONNECT_CONCURRENCY = 32
"""Connections being set up at once (each TCP connect runs in a worker thread)."""
CLOSE_DRAIN_S = 10.0
"""At shutdown, wait this long for outstanding PUBACKs (the launcher allows 15 s in all)."""


@dataclass(frozen=True, slots=True)
class ConnectionMode:
    """``per-device`` (``pool_size`` None) or ``pooled:N``."""

    pool_size: int | None = None

    @classmethod
    def parse(cls, text: str) -> ConnectionMode:
        if text == "per-device":
            return cls(None)
        match = re.fullmatch(r"pooled:(\d+)", text)
        if not match or int(match.group(1)) < 1:
            raise ValueError(
                f"connections must be 'per-device' or 'pooled:N' (N >= 1), not {text!r}"
            )
        return cls(int(match.group(1)))

    def __str__(self) -> str:
        return "per-device" if self.pool_size is None else f"pooled:{self.pool_size}"

    def connections_for(self, devices: int) -> int:
        return devices if self.pool_size is None else min(self.pool_size, devices)


def pool_members(devices: int, mode: ConnectionMode) -> list[list[int]]:
    """Device indexes per connection: device ``k`` on connection ``k % connections``."""
    count = mode.connections_for(devices)
    members: list[list[int]] = [[] for _ in range(count)]
    for i in range(devices):
        members[i % count].append(i)
    return members


def gateway_id(client_prefix: str, k: int) -> str:
    """The client id (and broker identity) of pooled connection ``k``."""
    return f"{client_prefix}-pool-{k}"


def fleet_identities(
    device_ids: Sequence[str], mode: ConnectionMode, client_prefix: str
) -> DeviceIdentities:
    """The broker identities the fleet connects with: each device (per-device connections) or
    each gateway with the devices it carries (pooled)."""
    if mode.pool_size is None:
        return DeviceIdentities(devices=tuple(device_ids))
    return DeviceIdentities(
        gateways={
            gateway_id(client_prefix, k): tuple(device_ids[i] for i in members)
            for k, members in enumerate(pool_members(len(device_ids), mode))
        }
    )


class FleetTransport:
    """The fleet's MQTT connections, owned by one ``async with``."""

    def __init__(
        self,
        devices: Sequence[DeviceSpec],
        *,
        topics: MqttTopics,
        broker: BrokerOptions,
        mode: ConnectionMode,
        client_prefix: str,
        now: Callable[[], datetime],
        interval_of: Callable[[int], int],
        presence_of: Callable[[int], Presence],
        on_command: Callable[[int, bytes], None],
        labels_topic: bool = False,
        operator: tuple[str, str] | None = None,
        backlog: int = 20_000,
        max_inflight: int = 100,
        device_key: str | None = None,
        on_reading_acked: Callable[[int, Reading], None] | None = None,
        resend_window_s: float = 0.0,
    ) -> None:
        """With ``device_key`` (and no username in ``broker``) each connection authenticates
        as its own identity (device or gateway id) with the password derived from the key.
        With ``operator`` (username, password) and ``labels_topic``, the labels go out over one
        more connection, as that user: brokers let no device publish them."""
        self._operator = operator
        self._labels_connection: MqttConnection | None = None
        self._resend_window_s = resend_window_s
        self._devices = list(devices)
        self._device_key = device_key
        self._on_reading_acked = on_reading_acked
        self._topics = topics
        self._broker = broker
        self._tls_context = broker.auth.ssl_context()
        """One TLS context for all the fleet's connections."""
        self.mode = mode
        self._prefix = client_prefix
        self._now = now
        self._interval_of = interval_of
        self._presence_of = presence_of
        self._on_command = on_command
        self._labels_topic = labels_topic
        self.backlog = Backlog(backlog)
        self._max_inflight = max_inflight
        self._index = {spec.device_id: i for i, spec in enumerate(self._devices)}
        self._members = pool_members(len(self._devices), mode)
        self._connections: list[MqttConnection] = []
        self._misc_task: asyncio.Task[None] | None = None
        self._entered = False
        self._closed = False
        self.published = 0
        """Readings handed to a connection so far."""

    # -- lifetime -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("FleetTransport is not reusable")
        self._entered = True
        self._connections = [self._connection(k) for k in range(len(self._members))]
        self._labels_connection = self._operator_connection()
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def start(connection: MqttConnection) -> None:
            async with limit:
                await connection.start()

        log.info(
            "connecting %d devices over %d connections (%s) to %s:%d",
            len(self._devices),
            len(self._connections),
            self.mode,
            self._broker.host,
            self._broker.port,
        )
        try:
            # The first waits for the broker (it may still be starting); the rest follow at once.
            await self._connections[0].start(retry=True)
            async with asyncio.TaskGroup() as group:
                for connection in self._all_connections()[1:]:
                    group.create_task(start(connection), name=f"connect-{connection.client_id}")
        except BaseException as error:
            await self._close_connections()
            if isinstance(error, BaseExceptionGroup):
                raise error.exceptions[0] from error
            raise
        self._misc_task = asyncio.create_task(self._misc(), name="mqtt-keepalive")
        log.info("all %d connections up", len(self._connections))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Say ``offline`` for every device and gateway, wait for the acknowledgements (a
        while), disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        now = self._now()
        for k, connection in enumerate(self._connections):
            if not connection.is_up:
                continue
            for i in self._members[k]:
                self._publish_status(connection, i, Presence.OFFLINE, now)
            if self.mode.pool_size is not None:
                connection.publish(
                    self._topics.gateway_status(connection.client_id),
                    self._gateway_status(k, Presence.OFFLINE, now),
                    retain=True,
                )
        try:
            async with asyncio.timeout(CLOSE_DRAIN_S):
                await self.backlog.drained()
        except TimeoutError:
            log.warning("%d messages still unacknowledged at shutdown", self.backlog.count)
        if self._misc_task is not None:
            self._misc_task.cancel()
        await self._close_connections()

    def _all_connections(self) -> list[MqttConnection]:
        """The devices' connections, then the operator's (labels) if there is one."""
        extra = [self._labels_connection] if self._labels_connection is not None else []
        return [*self._connections, *extra]

    def _operator_connection(self) -> MqttConnection | None:
        if not self._labels_topic or self._operator is None:
            return None
        username, password = self._operator
        auth = dataclasses.replace(self._broker.auth, username=username, password=password)
        return MqttConnection(
            f"{self._prefix}-{username}",
            dataclasses.replace(self._broker, auth=auth),
            self.backlog,
            max_inflight=self._max_inflight,
            tls_context=self._tls_context,
        )

    async def _close_connections(self) -> None:
        async with asyncio.TaskGroup() as group:
            for connection in self._all_connections():
                group.create_task(connection.aclose(), name=f"close-{connection.client_id}")

    def _connection(self, k: int) -> MqttConnection:
        members = self._members[k]
        if self.mode.pool_size is None:
            spec = self._devices[members[0]]
            identity = spec.device_id
            client_id = f"{self._prefix}-{spec.device_id}"
            will = Will(
                self._topics.status(spec.device_id),
                DeviceStatus(device_id=spec.device_id, status=Presence.OFFLINE)
                .model_dump_json()
                .encode(),
            )
        else:
            client_id = identity = gateway_id(self._prefix, k)
            will = Will(
                self._topics.gateway_status(client_id),
                GatewayStatus(gateway_id=client_id, status=Presence.OFFLINE, devices=len(members))
                .model_dump_json()
                .encode(),
            )
        return MqttConnection(
            client_id,
            self._broker_for(identity),
            self.backlog,
            will=will,
            on_up=lambda connection: self._announce(k, connection),
            on_message=self._on_message,
            on_acked=self._acked if self._on_reading_acked is not None else None,
            max_inflight=self._max_inflight,
            resend_window_s=self._resend_window_s,
            tls_context=self._tls_context,
        )

    def _broker_for(self, identity: str) -> BrokerOptions:
        if self._device_key is None or self._broker.auth.username is not None:
            return self._broker
        auth = dataclasses.replace(
            self._broker.auth,
            username=identity,
            password=device_password(self._device_key, identity),
        )
        return dataclasses.replace(self._broker, auth=auth)

    def _acked(self, tag: object) -> None:
        assert self._on_reading_acked is not None
        assert isinstance(tag, tuple)  # the (device index, reading) publish() gave it
        self._on_reading_acked(*tag)

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for connection in self._all_connections():
                connection.misc()

    # -- what devices say -----------------------------------------------------------------

    def _announce(self, k: int, connection: MqttConnection) -> None:
        """On every CONNACK: births, statuses, gateway status, command subscriptions."""
        now = self._now()
        members = self._members[k]
        gateway = connection.client_id if self.mode.pool_size is not None else None
        if gateway is not None:
            connection.publish(
                self._topics.gateway_status(gateway),
                self._gateway_status(k, Presence.ONLINE, now),
                retain=True,
            )
        for i in members:
            spec = self._devices[i]
            latitude, longitude = spec.place
            birth = DeviceBirth(
                device_id=spec.device_id,
                kind=spec.kind,
                tz=spec.tz,
                location=Location(
                    latitude=latitude, longitude=longitude, name=region_of(spec.tz).name
                ),
                nominal_kw=spec.nominal_kw,
                firmware=spec.firmware_version,
                interval_s=self._interval_of(i),
                ts=now,
                gateway_id=gateway,
            )
            connection.publish(
                self._topics.birth(spec.device_id), birth.model_dump_json().encode(), retain=True
            )
            self._publish_status(connection, i, self._presence_of(i), now)
        connection.subscribe([self._topics.commands(self._devices[i].device_id) for i in members])
        if connection.connects > 1:
            log.info("%s: reconnected (%d devices)", connection.client_id, len(members))

    def _gateway_status(self, k: int, status: Presence, now: datetime) -> bytes:
        gateway = gateway_id(self._prefix, k)
        return (
            GatewayStatus(gateway_id=gateway, status=status, devices=len(self._members[k]), ts=now)
            .model_dump_json()
            .encode()
        )

    def _publish_status(
        self, connection: MqttConnection, i: int, status: Presence, now: datetime
    ) -> None:
        device_id = self._devices[i].device_id
        payload = DeviceStatus(device_id=device_id, status=status, ts=now).model_dump_json()
        connection.publish(self._topics.status(device_id), payload.encode(), retain=True)

    def connection_of(self, device_id: str) -> MqttConnection:
        return self._connections[self._index[device_id] % len(self._connections)]

    @property
    def connections(self) -> Sequence[MqttConnection]:
        return self._connections

    def publish(self, i: int, events: Sequence[Event]) -> None:
        """Publish what device ``i`` produced, in order."""
        connection = self._connections[i % len(self._connections)]
        topics = self._topics
        for event in events:
            if isinstance(event, Reading):
                tag = (i, event) if self._on_reading_acked is not None else None
                connection.publish(topics.readings(event.device_id), event.to_json(), tag=tag)
                self.published += 1
            elif isinstance(event, Presence):
                self._publish_status(connection, i, event, self._now())
            elif isinstance(event, AnomalyLabel) and self._labels_topic:
                labels = self._labels_connection or connection
                labels.publish(topics.labels, event.model_dump_json().encode())

    def _on_message(self, topic: str, payload: bytes) -> None:
        device_id = self._topics.device_id_of(topic)
        index = self._index.get(device_id or "")
        if index is None or not topic.endswith("/commands"):
            log.warning("message on unexpected topic %s ignored", topic)
            return
        self._on_command(index, payload)
