"""The simulator rides out a broker restart: it reconnects, re-announces, resends, loses nothing.

Restarts a PRIVATE Mosquitto (its own home and port, the local cluster's configuration), never
the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from schema.connections import MqttConnection
from schema.device_messages import DeviceStatus, Presence
from schema.topics import MqttTopics
from schema.wire import decode_reading
from simulator.app import Simulator, identities, make_plan
from simulator.settings import SimulatorSettings
from wattstream.localcluster import ClusterSettings
from wattstream.localcluster import mosquitto as broker

from ..conftest import Services, free_port, private_mqtt_auth
from ..fixtures.waiting import wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(180)]


@pytest.fixture
def broker_settings(tmp_path: Path, services: Services) -> Iterator[ClusterSettings]:
    """A private broker's settings; stopped after the test if it was started. (``services``
    puts the session's credentials in the environment the simulator's settings read.)"""
    settings = ClusterSettings(
        home=tmp_path / "cluster",
        mqtt_port=free_port(),
        secrets_dir=ClusterSettings().secrets_path,  # the session's credentials (os.environ)
    )
    try:
        yield settings
    finally:
        broker.stop(settings)


@pytest.fixture
def private_broker(broker_settings: ClusterSettings) -> ClusterSettings:
    broker.start(broker_settings)
    broker.wait_ready(broker_settings)
    return broker_settings


class PersistentObserver:
    """A persistent-session subscriber (paho's own thread and reconnects): across a broker
    restart it gets what was queued for it."""

    def __init__(self, port: int, topic_filter: str, auth: dict[str, str]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.live: list[tuple[str, bytes]] = []
        """Without the copies of retained messages that every (re)subscription brings."""
        self._lock = threading.Lock()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"observer-{port}",
            clean_session=False,
        )
        self.client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(topic_filter, qos=1)
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda _c, _u, _m, _r, _p: self._subscribed.set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.username_pw_set(auth["username"], auth["password"])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        # Subscribed before anyone publishes: a device's first "online" must arrive live, not
        # only as the retained copy a late subscription brings.
        if not self._subscribed.wait(10):
            self.close()
            raise TimeoutError(f"no SUBACK for the observer's subscription to {topic_filter}")

    def _on_message(
        self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage
    ) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))
            if not message.retain:
                self.live.append((message.topic, bytes(message.payload)))

    def snapshot(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("connections", ["per-device", "pooled:2"])
async def test_broker_restart_loses_no_reading(
    private_broker: ClusterSettings, namespace: str, connections: str
) -> None:
    topics = MqttTopics(namespace)
    config = SimulatorSettings(
        mqtt=MqttConnection(port=private_broker.mqtt_port),
        topic_namespace=namespace,
        devices=3,
        interval_s=60,
        speed=120,  # two readings a second per device
        start=datetime(2026, 10, 25, 0, 0, tzinfo=UTC),
        connections=connections,
        progress_s=0,
    )
    broker.provision(private_broker, identities(config))
    sim = Simulator(config, make_plan(config))
    observer = PersistentObserver(
        private_broker.mqtt_port,
        f"{topics.root}/devices/#",
        private_mqtt_auth(private_broker, "bridge"),
    )
    task = asyncio.create_task(sim.run(), name="simulator")
    try:

        def readings() -> list[tuple[str, int]]:
            return [
                (decode_reading(p).device_id, decode_reading(p).seq)
                for t, p in observer.snapshot()
                if t.endswith("/readings")
            ]

        await wait_until_async("a few readings", lambda: len(readings()) >= 9, 30)
        await asyncio.to_thread(broker.stop, private_broker)
        await wait_until_async(
            "readings piling up in the simulator (two a device)",
            lambda: sum(c.unacked for c in sim.transport.connections) >= 2 * config.devices,
            30,
        )
        await asyncio.to_thread(broker.start, private_broker)
        await asyncio.to_thread(broker.wait_ready, private_broker)
        await wait_until_async(
            "every connection back",
            lambda: all(c.connects >= 2 for c in sim.transport.connections),
            30,
        )
        before = len(readings())

        def every_device_went_on() -> bool:
            after = readings()[before:]
            return (
                len({device for device, _ in after}) == 3
                and min(max(seq for device, seq in after if device == d) for d, _ in after) >= 12
            )

        await wait_until_async(
            "every device's 13th reading after the restart", every_device_went_on, 30
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def without_gaps() -> bool:
        seqs: dict[str, set[int]] = defaultdict(set)
        for device_id, seq in readings():
            seqs[device_id].add(seq)
        return all(seen == set(range(max(seen) + 1)) for seen in seqs.values())

    # Readings on their way when the simulator stopped still arrive; a lost one never does.
    await wait_until_async("every device's readings without a gap", without_gaps, 10)
    observer.close()

    seqs: dict[str, set[int]] = defaultdict(set)
    for device_id, seq in readings():
        seqs[device_id].add(seq)
    assert set(seqs) == {"dev-00000", "dev-00001", "dev-00002"}
    for device_id, seen in seqs.items():
        assert seen == set(range(max(seen) + 1)), f"{device_id} lost readings"  # no gap
        assert max(seen) >= 12
    # Re-announced after the reconnect: each device said online again.
    onlines = [
        DeviceStatus.model_validate_json(p).device_id
        for t, p in observer.live
        if t.endswith("/status") and DeviceStatus.model_validate_json(p).status is Presence.ONLINE
    ]
    assert set(onlines) == {"dev-00000", "dev-00001", "dev-00002"}
    assert all(onlines.count(device_id) >= 2 for device_id in set(onlines))


async def test_the_simulator_waits_for_a_broker_that_is_not_up_yet(
    broker_settings: ClusterSettings, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = SimulatorSettings(
        mqtt=MqttConnection(port=broker_settings.mqtt_port),
        topic_namespace=namespace,
        devices=2,
        interval_s=60,
        speed=600,
        start=datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
        max_ticks=5,
        progress_s=0,
    )
    broker.provision(broker_settings, identities(config))  # written now, read at start
    sim = Simulator(config, make_plan(config))
    task = asyncio.create_task(sim.run(), name="simulator")
    await wait_until_async("a failed attempt to connect", lambda: "retrying in" in caplog.text, 30)
    assert not task.done()  # still trying
    await asyncio.to_thread(broker.start, broker_settings)
    await asyncio.wait_for(task, 60)
    assert sim.transport.published == 2 * 5
