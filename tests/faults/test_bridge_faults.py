"""The bridge loses nothing when it or Kafka dies: kill things under load, audit every ``seq``.

Runs against a PRIVATE Mosquitto and Kafka (own home under pytest's temporary directory, free
ports), because one test kills the Kafka broker. The bridge runs as its own process. Each test
publishes a fleet's readings at QoS 1 (a message counts once the broker acknowledged it) while
something fails, then reads the ``readings`` topic back and checks, per device, that no ``seq``
is missing. Duplicates are allowed (at-least-once) and counted; the audit is printed.

(a) SIGKILL the bridge during a burst, restart it.
(b) SIGKILL the Kafka broker under load, restart it: the bridge stops taking messages (bounded
    in flight, unhealthy), the broker queues them, the bridge catches up.
(c) SIGTERM the bridge, keep publishing, restart it: the broker's queue for the persistent
    session drains into Kafka; a clean stop acknowledged all Kafka took, so no duplicates.
(d) Restart the MQTT broker while the bridge drains a backlog: the bridge reconnects the MQTT
    side only (the producer stays) and the broker's persisted session has the rest.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from schema.credentials import DeviceIdentities
from schema.topics import KafkaTopics, MqttTopics
from tests.conftest import Services, Spawn, Spawned, free_port, free_ports, private_mqtt_auth
from tests.fixtures.bad_inputs import valid_reading
from tests.fixtures.bridge import (
    Audit,
    bridge_env,
    consume,
    http_get,
    scrape,
    wait_healthy,
)
from tests.fixtures.waiting import wait_until
from wattstream.localcluster import ClusterSettings, down, endpoints, ensure_topics
from wattstream.localcluster import kafka as local_kafka
from wattstream.localcluster import mosquitto as local_mosquitto
from wattstream.localcluster.install import ensure_packages
from wattstream.localcluster.process import file_lock

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

DEVICES = [f"dev-{i:02d}" for i in range(10)]
LOAD = "fault-load"
"""The publisher's identity on the private broker."""


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, services: Services
) -> Iterator[ClusterSettings]:
    """Mosquitto and Kafka of our own (no PostgreSQL: the bridge does not need it), with the
    session's credentials (``services`` puts them in the environment the bridges inherit)."""
    mqtt, kafka, controller, pg = free_ports(4)
    settings = ClusterSettings(
        home=tmp_path_factory.mktemp("bridge-faults") / "home",
        mqtt_port=mqtt,
        kafka_port=kafka,
        kafka_controller_port=controller,
        pg_port=pg,
        # Share the jars of the development cluster (WATTSTREAM_CLUSTER_HOME, else .wattstream).
        kafka_jars_dir=ClusterSettings().jars_dir,
        secrets_dir=ClusterSettings().secrets_path,  # the session's credentials (os.environ)
    )
    settings.home.mkdir(parents=True)
    try:
        with file_lock(settings.home / ".lock"):
            ensure_packages(
                [*local_mosquitto.required_packages(), *local_kafka.required_packages(settings)]
            )
            local_mosquitto.start(settings)
            local_kafka.start(settings)
            local_mosquitto.wait_ready(settings)
            local_kafka.wait_ready(settings)
            # The publisher connects as a gateway carrying every test device.
            local_mosquitto.provision(settings, DeviceIdentities(gateways={LOAD: tuple(DEVICES)}))
        yield settings
    finally:
        down(settings)


def restart_mosquitto(settings: ClusterSettings) -> None:
    local_mosquitto.start(settings)
    local_mosquitto.wait_ready(settings)


def restart_kafka(settings: ClusterSettings) -> None:
    local_kafka.start(settings)
    local_kafka.wait_ready(settings)


class Load(threading.Thread):
    """Publishes ``per_device`` readings for every device at about ``rate`` messages/s."""

    def __init__(
        self,
        settings: ClusterSettings,
        namespace: str,
        per_device: int,
        rate: float,
        first_seq: int = 0,
    ):
        super().__init__(name="load", daemon=True)
        self._settings, self._topics = settings, MqttTopics(namespace)
        self.per_device, self._rate, self._first = per_device, rate, first_seq
        self.published = 0
        self.sent = 0
        """Handed to the client so far (acknowledged or not)."""
        self.error: BaseException | None = None

    @property
    def seqs(self) -> range:
        return range(self._first, self._first + self.per_device)

    @property
    def expected(self) -> dict[str, set[int]]:
        return {device: set(self.seqs) for device in DEVICES}

    def run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by finish()
            self.error = exc

    def _publish(self) -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(0)
        auth = private_mqtt_auth(self._settings, LOAD)
        client.username_pw_set(auth["username"], auth["password"])
        client.connect(self._settings.host, self._settings.mqtt_port)
        client.loop_start()
        try:
            started, infos = time.monotonic(), []
            for seq in self.seqs:
                for device in DEVICES:
                    payload = valid_reading(device, seq)
                    infos.append(client.publish(self._topics.readings(device), payload, qos=1))
                self.sent = len(infos)
                # Pacing the load (the rate is what the test is about), not waiting for a state.
                ahead = started + len(infos) / self._rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            for info in infos:
                info.wait_for_publish(60)
                self.published += info.is_published()
        finally:
            client.disconnect()
            client.loop_stop()

    def finish(self, timeout: float = 90) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the publisher did not finish"
        if self.error is not None:
            raise self.error
        assert self.published == self.per_device * len(DEVICES)


class Scenario:
    """One namespace on the private cluster, its bridge processes and the final audit."""

    def __init__(
        self, settings: ClusterSettings, namespace: str, spawn: Spawn, **bridge_settings: object
    ) -> None:
        self.settings, self.namespace, self._spawn = settings, namespace, spawn
        self.kafka = KafkaTopics(namespace)
        self.bootstrap = endpoints(settings).kafka_bootstrap
        self._bridge_settings = bridge_settings
        self.port = free_port()
        self.runs = 0

    async def create_topics(self) -> None:
        await ensure_topics(self.bootstrap, self.kafka.specs())

    async def start_bridge(self) -> Spawned:
        self.runs += 1
        bridge = self._spawn(
            f"bridge-{self.runs}",
            "stream.bridge",
            bridge_env(
                mqtt_port=self.settings.mqtt_port,
                kafka_bootstrap=self.bootstrap,
                namespace=self.namespace,
                client_id=f"bridge-{self.namespace}",  # the same session every run
                metrics_port=self.port,
                **self._bridge_settings,
            ),
        )
        await asyncio.to_thread(wait_healthy, self.port, bridge)
        return bridge

    def forwarded(self) -> float:
        return scrape(self.port).get('bridge_forwarded_total{kind="reading"}', 0.0)

    async def audit(self, *loads: Load, within_s: float = 90) -> Audit:
        expected = {
            device: set().union(*(load.expected[device] for load in loads)) for device in DEVICES
        }

        def complete(records: list[object]) -> bool:
            audit = Audit(expected)
            audit.add(records)  # type: ignore[arg-type]
            return audit.complete()

        records = await consume(self.bootstrap, [self.kafka.readings], complete, within_s)
        audit = Audit(expected)
        audit.add(records)
        print(f"audit: {json.dumps(audit.summary())}")
        return audit


MakeScenario = Callable[..., Scenario]
RecordProperty = Callable[[str, object], None]


@pytest.fixture
def make_scenario(cluster: ClusterSettings, namespace: str, spawn: Spawn) -> MakeScenario:
    def make(**bridge_settings: object) -> Scenario:
        return Scenario(cluster, namespace, spawn, **bridge_settings)

    return make


async def test_a_bridge_killed_during_a_burst_loses_nothing(
    make_scenario: MakeScenario, record_property: RecordProperty
) -> None:
    scenario = make_scenario()
    await scenario.create_topics()
    bridge = await scenario.start_bridge()
    load = Load(scenario.settings, scenario.namespace, per_device=400, rate=2000)
    load.start()
    await asyncio.to_thread(
        wait_until,
        "a third forwarded",
        lambda: scenario.forwarded() > 1300,
        30,
        tolerate=(OSError,),
    )
    bridge.process.send_signal(signal.SIGKILL)
    killed_at = await asyncio.to_thread(bridge.process.wait, 10)
    assert killed_at == -signal.SIGKILL
    await asyncio.to_thread(load.finish)

    await scenario.start_bridge()
    audit = await scenario.audit(load)
    record_property("audit", audit.summary())
    assert audit.missing == {}
    assert audit.unexpected == {}
    assert audit.first_seen_out_of_order == 0
    # The restarted bridge had real work: what the broker kept for the session.
    assert scenario.forwarded() > 0


async def test_kafka_killed_and_restarted_under_load_loses_nothing(
    make_scenario: MakeScenario, record_property: RecordProperty
) -> None:
    window = 200
    scenario = make_scenario(max_in_flight=window, stall_after_s=2, kafka_request_timeout_ms=10_000)
    await scenario.create_topics()
    bridge = await scenario.start_bridge()
    load = Load(scenario.settings, scenario.namespace, per_device=250, rate=200)
    load.start()
    await asyncio.to_thread(
        wait_until, "some forwarded", lambda: scenario.forwarded() > 200, 30, tolerate=(OSError,)
    )

    kafka = local_kafka.managed_process(scenario.settings)
    await asyncio.to_thread(kafka.stop, sig=signal.SIGKILL, timeout=10)
    in_flight: list[float] = []

    def unhealthy() -> bool:
        # Sampled on the way: while Kafka is gone the bridge holds at most its window.
        in_flight.append(scrape(scenario.port)["bridge_in_flight"])
        return http_get(scenario.port, "/healthz")[0] == 503

    await asyncio.to_thread(wait_until, "a 503 while Kafka is gone", unhealthy, 30, interval_s=0.25)
    assert max(in_flight) <= window  # the rest waits in the broker's queue
    await asyncio.to_thread(restart_kafka, scenario.settings)

    await asyncio.to_thread(load.finish)
    audit = await scenario.audit(load)
    record_property("audit", audit.summary())
    assert audit.missing == {}
    assert audit.unexpected == {}
    assert bridge.process.poll() is None, "the bridge died instead of waiting for Kafka"
    assert http_get(scenario.port, "/healthz")[0] == 200


async def test_a_stopped_bridge_catches_up_from_the_broker_queue(
    make_scenario: MakeScenario, record_property: RecordProperty
) -> None:
    scenario = make_scenario()
    await scenario.create_topics()
    bridge = await scenario.start_bridge()
    load = Load(scenario.settings, scenario.namespace, per_device=150, rate=150)
    load.start()
    await asyncio.to_thread(
        wait_until, "some forwarded", lambda: scenario.forwarded() > 150, 30, tolerate=(OSError,)
    )
    bridge.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(bridge.process.wait, 20) == 0
    assert "drained" in bridge.log_tail()
    # Devices keep publishing; the broker queues for the session.
    queued = min(load.sent + 400, load.per_device * len(DEVICES))
    await asyncio.to_thread(
        wait_until, "readings queued for the stopped bridge", lambda: load.sent >= queued, 30
    )

    restarted = await scenario.start_bridge()
    assert "session present: True" in restarted.log.read_text()
    await asyncio.to_thread(load.finish)
    audit = await scenario.audit(load)
    record_property("audit", audit.summary())
    assert audit.missing == {}
    assert audit.unexpected == {}
    assert audit.duplicates == 0  # a clean stop acknowledged everything Kafka had taken
    assert audit.first_seen_out_of_order == 0
    assert scenario.forwarded() > 300  # what was queued while it was away, and the rest


async def test_a_broker_restart_reconnects_the_mqtt_side_only(
    make_scenario: MakeScenario, record_property: RecordProperty
) -> None:
    scenario = make_scenario()
    await scenario.create_topics()
    await scenario.start_bridge()
    before = Load(scenario.settings, scenario.namespace, per_device=150, rate=3000)
    before.start()
    await asyncio.to_thread(before.finish)
    # SIGTERM: Mosquitto writes its sessions and queues to disk, then exits.
    mosquitto = local_mosquitto.managed_process(scenario.settings)
    await asyncio.to_thread(mosquitto.stop)
    await asyncio.to_thread(
        wait_until,
        "a 503 while the broker is gone",
        lambda: http_get(scenario.port, "/healthz")[0] == 503,
        10,
    )
    await asyncio.to_thread(restart_mosquitto, scenario.settings)

    def reconnected() -> bool:
        metrics = scrape(scenario.port)
        return (
            metrics.get('bridge_reconnects_total{side="mqtt"}', 0) >= 1
            and http_get(scenario.port, "/healthz")[0] == 200
        )

    await asyncio.to_thread(wait_until, "the MQTT side back", reconnected, 60, tolerate=(OSError,))
    after = Load(scenario.settings, scenario.namespace, per_device=50, rate=1000, first_seq=150)
    after.start()
    await asyncio.to_thread(after.finish)
    audit = await scenario.audit(before, after)
    record_property("audit", audit.summary())
    assert audit.missing == {}
    assert audit.unexpected == {}
    assert scrape(scenario.port).get('bridge_reconnects_total{side="kafka"}', 0) == 0
