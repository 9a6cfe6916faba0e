"""The simulator against the real Mosquitto: payloads, births, last wills, commands, labels.

Each test has its own topic tree (the ``namespace`` fixture) and watches it with an independent
MQTT client, as a consumer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from schema.device_messages import (
    AnomalyKind,
    AnomalyLabel,
    CommandAction,
    DeviceBirth,
    DeviceCommand,
    DeviceStatus,
    GatewayStatus,
    LabelSource,
    Presence,
)
from schema.topics import MqttTopics
from schema.wire import Reading, decode_reading
from simulator.app import Simulator, make_plan
from simulator.devices import tick_time
from simulator.fleet import build_fleet
from simulator.settings import SimulatorSettings

from ..conftest import Services, Spawn, provision_simulator
from ..fixtures.waiting import wait_until_async

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # Berlin springs forward at 01:00 UTC
SEED = 13


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Observer:
    """Every message under a topic filter, as an independent subscriber receives it."""

    messages: list[Seen] = field(default_factory=list)

    def on(self, topic: str) -> list[Seen]:
        return [m for m in self.messages if m.topic == topic]

    async def wait_for(
        self, what: str, probe: Callable[[], object], within_s: float = 20.0
    ) -> object:
        return await wait_until_async(what, probe, within_s, interval_s=0.05)


@contextlib.asynccontextmanager
async def observe(services: Services, *filters: str) -> AsyncIterator[Observer]:
    observer = Observer()
    async with aiomqtt.Client(
        services.mqtt_host,
        port=services.mqtt_port,
        identifier=f"observer-{uuid.uuid4().hex[:8]}",
        **services.mqtt_auth("bridge"),
    ) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                observer.messages.append(Seen(message.topic.value, payload, message.retain))

        task = asyncio.create_task(collect(), name="observer")
        try:
            yield observer
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def settings(services: Services, namespace: str, **overrides: object) -> SimulatorSettings:
    values: dict[str, object] = {
        "mqtt": {"host": services.mqtt_host, "port": services.mqtt_port},
        "topic_namespace": namespace,
        "devices": 4,
        "interval_s": 60,
        "start": START,
        "seed": SEED,
        "progress_s": 0,
        **overrides,
    }
    return SimulatorSettings.model_validate(values)


def status_of(seen: Seen) -> DeviceStatus:
    return DeviceStatus.model_validate_json(seen.payload)


async def test_readings_arrive_with_valid_payloads_births_and_statuses(
    services: Services, namespace: str
) -> None:
    topics = MqttTopics(namespace)
    ticks = 6
    async with observe(services, f"{topics.root}/devices/#") as seen:
        sim = Simulator(
            config := settings(services, namespace, speed=60_000, max_ticks=ticks),
            make_plan(config),
        )
        await asyncio.wait_for(sim.run(), 30)
        await seen.wait_for("every reading", lambda: len(seen.messages) >= 4 * (ticks + 3))

    fleet = build_fleet(4, SEED)
    for model in fleet:
        device_id = model.spec.device_id
        readings = [
            decode_reading(m.payload, topic_device_id=device_id)
            for m in seen.on(topics.readings(device_id))
        ]
        expected = [model.reading(k, tick_time(START, k, 60), 60) for k in range(ticks)]
        assert [r.to_json() for r in readings] == [r.to_json() for r in expected]
        (birth,) = [
            DeviceBirth.model_validate_json(m.payload) for m in seen.on(topics.birth(device_id))
        ]
        assert (birth.kind, birth.tz, birth.nominal_kw, birth.interval_s, birth.gateway_id) == (
            model.spec.kind,
            model.spec.tz,
            model.spec.nominal_kw,
            60,
            None,
        )
        statuses = [status_of(m) for m in seen.on(topics.status(device_id))]
        assert [s.status for s in statuses] == [Presence.ONLINE, Presence.OFFLINE]
        assert all(s.ts is not None for s in statuses)  # said by the device, not a will
    berlin = [decode_reading(m.payload) for m in seen.on(topics.readings("dev-00000"))]
    assert {r.ts.utcoffset() for r in berlin} == {
        datetime.fromisoformat("2026-03-29T01:30:00+01:00").utcoffset()
    }  # 00:30..00:35 UTC: still winter time

    # Retained for late subscribers: the birth and the last status.
    async with observe(services, f"{topics.root}/devices/dev-00002/#") as late:
        await late.wait_for("retained birth and status", lambda: len(late.messages) >= 2)
        assert {m.topic for m in late.messages if m.retain} == {
            topics.birth("dev-00002"),
            topics.status("dev-00002"),
        }
        assert status_of(late.on(topics.status("dev-00002"))[0]).status is Presence.OFFLINE


@contextlib.asynccontextmanager
async def running(sim: Simulator) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sim.run(), name="simulator")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_dropped_device_connection_flips_its_retained_status_offline(
    services: Services, namespace: str
) -> None:
    topics = MqttTopics(namespace)
    config = settings(services, namespace, speed=60)  # a reading a second, until cancelled
    sim = Simulator(config, make_plan(config))
    async with observe(services, topics.all_status) as seen, running(sim):

        def statuses(device_id: str) -> list[DeviceStatus]:
            return [status_of(m) for m in seen.on(topics.status(device_id))]

        for device_id in ("dev-00000", "dev-00001"):
            await seen.wait_for(f"{device_id} online", lambda d=device_id: statuses(d))
        # The TCP connection dies without DISCONNECT: the broker publishes the last will.
        sim.transport.connection_of("dev-00001").abort(down_for_s=1.0)
        await seen.wait_for("the last will", lambda: len(statuses("dev-00001")) >= 2)
        will = statuses("dev-00001")[1]
        assert (will.status, will.ts) == (Presence.OFFLINE, None)
        # A fresh subscriber sees it retained.
        async with observe(services, topics.status("dev-00001")) as late:
            await late.wait_for("retained offline", lambda: late.messages)
            assert late.messages[0].retain
            assert status_of(late.messages[0]).status is Presence.OFFLINE
        # The device reconnects by itself and says so; its neighbour never went offline.
        await seen.wait_for("back online", lambda: len(statuses("dev-00001")) >= 3, within_s=15)
        assert statuses("dev-00001")[2].status is Presence.ONLINE
        assert [s.status for s in statuses("dev-00000")] == [Presence.ONLINE]


@pytest.mark.parametrize("connections", ["per-device", "pooled:2"])
async def test_sigkill_of_the_simulator_fires_the_last_wills(
    services: Services, namespace: str, spawn: Spawn, connections: str
) -> None:
    topics = MqttTopics(namespace)
    devices = 4
    args = (
        f"--mqtt-host={services.mqtt_host}",
        f"--mqtt-port={services.mqtt_port}",
        f"--topic-namespace={namespace}",
        f"--devices={devices}",
        f"--connections={connections}",
        "--interval-s=60",
        "--speed=60",
    )
    provision_simulator(services, *args)
    async with observe(services, f"{topics.root}/#") as seen:
        sim = spawn("simulator", "simulator", {}, *args)

        def births() -> list[DeviceBirth]:
            return [
                DeviceBirth.model_validate_json(m.payload)
                for m in seen.messages
                if m.topic.endswith("/birth")
            ]

        await seen.wait_for("every birth", lambda: len(births()) == devices)
        await seen.wait_for(
            "a reading", lambda: any(m.topic.endswith("/readings") for m in seen.messages)
        )
        sim.process.kill()
        sim.process.wait(timeout=10)

        if connections == "per-device":
            assert all(b.gateway_id is None for b in births())

            def offline() -> set[str]:
                return {
                    s.device_id
                    for s in (status_of(m) for m in seen.messages if m.topic.endswith("/status"))
                    if s.status is Presence.OFFLINE and s.ts is None
                }

            await seen.wait_for("every device's last will", lambda: len(offline()) == devices)
        else:
            gateways = {b.gateway_id for b in births()}
            assert len(gateways) == 2 and None not in gateways

            def gone() -> set[str]:
                return {
                    g.gateway_id
                    for g in (
                        GatewayStatus.model_validate_json(m.payload)
                        for m in seen.messages
                        if "/gateways/" in m.topic
                    )
                    if g.status is Presence.OFFLINE and g.ts is None
                }

            await seen.wait_for("both gateways' last wills", lambda: gone() == gateways)
            # The documented trade-off: devices behind a gateway keep their last own status.
            device_statuses = [
                status_of(m)
                for m in seen.messages
                if m.topic.endswith("/status") and "/devices/" in m.topic
            ]
            assert {s.status for s in device_statuses} == {Presence.ONLINE}


async def test_a_command_injects_an_anomaly_seen_in_readings_and_labels(
    services: Services, namespace: str, tmp_path: Path
) -> None:
    topics = MqttTopics(namespace)
    labels_file = tmp_path / "labels.jsonl"
    config = settings(
        services, namespace, speed=300, labels_file=labels_file, labels_topic=True
    )  # a reading every 0.2 s
    sim = Simulator(config, make_plan(config))
    target = "dev-00001"
    model = build_fleet(4, SEED)[1]
    async with observe(services, topics.readings(target), topics.labels) as seen, running(sim):

        def readings() -> list[Reading]:
            return [decode_reading(m.payload) for m in seen.on(topics.readings(target))]

        await seen.wait_for("a few readings", lambda: len(readings()) >= 3)
        command = DeviceCommand(
            command_id="spike-1",
            action=CommandAction.ANOMALY,
            anomaly=AnomalyKind.SPIKE,
            magnitude=5.0,
            duration_s=120,  # two readings
            issued_at=datetime.now(UTC),
        )
        async with aiomqtt.Client(
            services.mqtt_host, port=services.mqtt_port, **services.mqtt_auth("api")
        ) as operator:
            await operator.publish(topics.commands(target), command.model_dump_json(), qos=1)
        await seen.wait_for("the label", lambda: seen.on(topics.labels))
        label = AnomalyLabel.model_validate_json(seen.on(topics.labels)[0].payload)
        await seen.wait_for(
            "readings after it",
            lambda: len([r for r in readings() if r.seq >= label.first_seq + 3]),
        )

    assert (label.device_id, label.anomaly, label.magnitude, label.source) == (
        target,
        AnomalyKind.SPIKE,
        5.0,
        LabelSource.COMMAND,
    )
    assert label.command_id == "spike-1"
    by_seq = {r.seq: r for r in readings()}
    nominal = model.spec.nominal_kw
    for seq in range(label.first_seq - 1, label.first_seq + 3):
        reading = by_seq[seq]
        normal = model.power_kw(int(reading.ts_utc.timestamp()))
        spiked = label.start <= reading.ts < label.end
        assert spiked == (seq in {label.first_seq, label.first_seq + 1})
        assert reading.power.value == pytest.approx(
            normal + (5.0 * nominal if spiked else 0), abs=1e-3
        )
    assert by_seq[label.first_seq].ts == label.start
    # The same record in the labels file.
    lines = labels_file.read_text().splitlines()
    assert [AnomalyLabel.model_validate_json(line) for line in lines] == [label]
    assert json.loads(lines[0])["label_id"] == f"spike-1:{target}"


async def test_invalid_commands_are_refused_and_the_device_carries_on(
    services: Services, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    topics = MqttTopics(namespace)
    config = settings(services, namespace, speed=300)
    sim = Simulator(config, make_plan(config))
    async with observe(services, topics.readings("dev-00000")) as seen, running(sim):
        await seen.wait_for("a reading", lambda: seen.messages)
        async with aiomqtt.Client(
            services.mqtt_host, port=services.mqtt_port, **services.mqtt_auth("api")
        ) as operator:
            await operator.publish(topics.commands("dev-00000"), b'{"action":"explode"}', qos=1)
        await seen.wait_for("the refusal", lambda: "invalid command refused" in caplog.text)
        count = len(seen.messages)
        await seen.wait_for("more readings", lambda: len(seen.messages) > count + 2)


async def test_fleet_file_with_duplicates_and_a_planned_anomaly(
    services: Services, namespace: str, spawn: Spawn, tmp_path: Path
) -> None:
    topics = MqttTopics(namespace)
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f"""
seed = {SEED}
interval = "1m"
start = {START.isoformat()}
scenarios = ["duplicates"]
[faults]
duplicate_p = 1.0
[[group]]
count = 2
kinds = ["ev_charger", "water_heater"]
zones = ["Asia/Kathmandu"]
[[anomaly]]
device = "dev-00001"
kind = "stuck"
after = "3m"
duration = "2m"
"""
    )
    labels = tmp_path / "labels.jsonl"
    args = (
        f"--mqtt-host={services.mqtt_host}",
        f"--mqtt-port={services.mqtt_port}",
        f"--topic-namespace={namespace}",
        f"--fleet={fleet}",
        f"--labels={labels}",
        "--speed=100000",
        "--max-ticks=8",
        "--connections=pooled:1",
    )
    provision_simulator(services, *args)
    async with observe(services, topics.all_readings) as seen:
        sim = spawn("simulator", "simulator", {}, *args)
        assert sim.process.wait(timeout=60) == 0, sim.log_tail()
        await seen.wait_for("every reading twice", lambda: len(seen.messages) >= 2 * (2 * 8 - 1))
    (label,) = [AnomalyLabel.model_validate_json(line) for line in labels.read_text().splitlines()]
    assert (label.device_id, label.anomaly, label.first_seq, label.source) == (
        "dev-00001",
        AnomalyKind.STUCK,
        3,
        LabelSource.SCHEDULE,
    )
    readings = [decode_reading(m.payload) for m in seen.on(topics.readings("dev-00001"))]
    seqs = [r.seq for r in readings]
    assert sorted(set(seqs)) == list(range(8))
    assert all(seqs.count(s) == 2 for s in range(7))  # each one re-sent with the next
    by_seq = {r.seq: r for r in readings}
    assert by_seq[3].power == by_seq[4].power == by_seq[2].power  # stuck at the last value
    assert by_seq[5].power != by_seq[2].power
    assert by_seq[0].tz == "Asia/Kathmandu" and by_seq[0].ts.isoformat().endswith("+05:45")


async def test_set_interval_and_offline_online_commands(services: Services, namespace: str) -> None:
    topics = MqttTopics(namespace)
    config = settings(services, namespace, speed=300)
    sim = Simulator(config, make_plan(config))
    target = "dev-00002"

    async def command(action: CommandAction, **fields: object) -> None:
        payload = DeviceCommand.model_validate(
            {
                "command_id": f"c-{action}",
                "action": action,
                "issued_at": datetime.now(UTC),
                **fields,
            }
        ).model_dump_json()
        async with aiomqtt.Client(
            services.mqtt_host, port=services.mqtt_port, **services.mqtt_auth("api")
        ) as operator:
            await operator.publish(topics.commands(target), payload, qos=1)

    async with (
        observe(services, topics.readings(target), topics.status(target)) as seen,
        running(sim),
    ):

        def readings() -> list[Reading]:
            return [decode_reading(m.payload) for m in seen.on(topics.readings(target))]

        def statuses() -> list[Presence]:
            return [status_of(m).status for m in seen.on(topics.status(target))]

        await seen.wait_for("readings", lambda: len(readings()) >= 2)
        await command(CommandAction.SET_INTERVAL, interval_s=15)
        await seen.wait_for(
            "faster readings", lambda: [r for r in readings() if r.interval_s == 15][3:]
        )
        fast = [r for r in readings() if r.interval_s == 15]
        gaps = {(b.ts_utc - a.ts_utc).total_seconds() for a, b in itertools.pairwise(fast)}
        assert gaps == {15.0}

        await command(CommandAction.OFFLINE)
        await seen.wait_for("offline", lambda: Presence.OFFLINE in statuses())
        count = len(readings())
        runtime = next(r for r in sim.plan.runtimes if r.device_id == target)
        offline_at = runtime.ticks
        await seen.wait_for("10 intervals offline", lambda: runtime.ticks >= offline_at + 10)
        assert len(readings()) <= count + 1  # at most one was already on its way
        await command(CommandAction.ONLINE)
        await seen.wait_for("online again", lambda: statuses()[-1:] == [Presence.ONLINE])
        await seen.wait_for("the late burst", lambda: len(readings()) >= count + 8)
    seqs = [r.seq for r in readings()]
    assert seqs == list(range(len(seqs)))  # nothing lost, in order, the burst included


async def test_after_a_lost_connection_the_last_seconds_are_published_again_and_journaled(
    services: Services, namespace: str, tmp_path: Path
) -> None:
    """A broker may lose what it acknowledged just before it crashed (Mosquitto 2.0 saves after
    acknowledging): a device publishes its last ``resend_window_s`` again after reconnecting."""
    from schema.journal import read_journal  # noqa: PLC0415

    topics = MqttTopics(namespace)
    journal = tmp_path / "sim.journal"
    config = settings(
        services, namespace, speed=60, devices=2, resend_window_s=30, journal_file=journal
    )
    sim = Simulator(config, make_plan(config))
    async with observe(services, topics.all_readings) as seen, running(sim):

        def seqs(device_id: str) -> list[int]:
            return [decode_reading(m.payload).seq for m in seen.on(topics.readings(device_id))]

        await seen.wait_for("three readings", lambda: len(seqs("dev-00001")) >= 3)
        before = len(seqs("dev-00001"))
        sim.transport.connection_of("dev-00001").abort(down_for_s=1.0)
        await seen.wait_for(
            "a resend", lambda: len(set(seqs("dev-00001"))) < len(seqs("dev-00001"))
        )
        # Everything seen before the drop (acknowledged well within the window) comes again.
        await seen.wait_for(
            "every reading seen before the drop again",
            lambda: set(seqs("dev-00001")[:before]) <= set(seqs("dev-00001")[before:]),
        )
        received = seqs("dev-00001")
        assert sim.transport.connection_of("dev-00001").resent >= before
        assert sim.transport.connection_of("dev-00000").resent == 0
    recorded = {
        s for r in read_journal(journal) if r.device_id == "dev-00001" for s, _ in r.readings()
    }
    assert recorded and recorded <= set(received)
    assert set(range(max(recorded) + 1)) == recorded  # no gap in what the journal says
