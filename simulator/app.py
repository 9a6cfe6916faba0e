"""The simulator service: a seeded fleet publishing one reading per device per interval.

The simulated clock runs live (each reading published at its own time; with ``backfill`` the
past is published first, as fast as the broker acknowledges) or ``speed`` times faster than the
wall clock from ``start``. Device ``k``'s ``n``-th reading has ``seq = n``, so a restarted
simulator with the same seed and start republishes byte-identical readings (duplicates the
pipeline must absorb, never gaps).

Tasks: the publisher (this module's loop, one heap of due devices), the transport's keepalive,
the progress line; commands arrive in the transport's callbacks and are applied at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import resource
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from schema.credentials import DeviceIdentities
from schema.device_messages import AnomalyLabel, DeviceCommand, LabelSource, Presence
from schema.topics import MqttTopics
from schema.wire import Reading
from simulator.behaviour import DeviceRuntime, Event
from simulator.connection import BrokerOptions
from simulator.devices import DeviceModel
from simulator.errors import FleetDefinitionError, SimulatorError
from simulator.fleet import DeviceGroup, build_fleet
from simulator.fleetfile import FleetFile, PlannedAnomaly, load_fleet_file, parse_anomaly
from simulator.journal import JournalWriter
from simulator.scenarios import Scenario, delivery_faults, dst_start, fleet_zones
from simulator.settings import SimulatorSettings
from simulator.transport import FleetTransport, fleet_identities

log = logging.getLogger(__name__)

BATCH = 2000
"""Readings made between two yields to the event loop (which then reads PUBACKs)."""


def floor_to_interval(at: datetime, interval_s: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % interval_s, tz=UTC)


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run needs, resolved from the settings and the fleet file."""

    fleet: list[DeviceModel]
    seed: int
    interval_s: int
    start: datetime
    scenarios: tuple[Scenario, ...]
    runtimes: list[DeviceRuntime]


def make_plan(settings: SimulatorSettings, *, now: datetime | None = None) -> Plan:
    """Resolve flags > environment > fleet file > defaults into a fleet and its runtimes."""
    given = settings.model_fields_set
    file = load_fleet_file(settings.fleet_file) if settings.fleet_file else FleetFile()

    seed = settings.seed if "seed" in given or file.seed is None else file.seed
    interval_s = (
        settings.interval_s if "interval_s" in given or file.interval_s is None else file.interval_s
    )
    scenarios = tuple(dict.fromkeys([*file.scenarios, *settings.scenarios]))
    zones = fleet_zones(scenarios)
    groups: Sequence[DeviceGroup] = [
        group if group.zones else dataclasses.replace(group, zones=zones) for group in file.groups
    ]
    if not groups:
        devices = settings.devices
        groups = [DeviceGroup(devices, zones=zones)]
    else:
        devices = sum(g.count for g in groups)
        if "devices" in given and settings.devices != devices:
            raise FleetDefinitionError(
                f"--devices {settings.devices} but the fleet file's groups have {devices}"
            )
    fleet = build_fleet(devices, seed, groups)
    now = now or datetime.now(UTC)
    start = settings.start if "start" in given else (file.start or settings.start)
    if start is None and Scenario.DST in scenarios:
        if settings.speed is None:
            raise FleetDefinitionError("the dst scenario needs accelerated time (--speed)")
        change_at = dst_start(int(now.timestamp()), fleet[0].spec.tz)
        start = datetime.fromtimestamp(change_at, tz=UTC)
        start = floor_to_interval(start, interval_s)
    if start is None:
        start = floor_to_interval(now - settings.backfill, interval_s)
    try:
        faults = delivery_faults(scenarios, file.faults)
    except ValueError as exc:
        raise FleetDefinitionError(str(exc)) from exc
    start_t = int(start.timestamp())
    runtimes = [
        DeviceRuntime(model, start_t=start_t, interval_s=interval_s, faults=faults)
        for model in fleet
    ]
    planned: list[PlannedAnomaly] = [*file.anomalies, *map(parse_anomaly, settings.anomalies)]
    index = {model.spec.device_id: i for i, model in enumerate(fleet)}
    for number, anomaly in enumerate(planned):
        if anomaly.device_id not in index:
            raise FleetDefinitionError(f"planned anomaly for unknown device {anomaly.device_id!r}")
        runtimes[index[anomaly.device_id]].schedule(
            anomaly.at_t(start_t), anomaly.command(number, start), LabelSource.SCHEDULE
        )
    return Plan(fleet, seed, interval_s, start, scenarios, runtimes)


class SimClock:
    """Simulated time: the wall clock (live) or ``start + speed * elapsed`` (accelerated)."""

    def __init__(self, start_t: int, speed: float | None) -> None:
        self._start_t = start_t
        self._speed = speed
        self._wall0 = time.monotonic()

    def restart(self) -> None:
        """Accelerated time starts counting now (after the connections are up)."""
        self._wall0 = time.monotonic()

    def now_t(self) -> float:
        if self._speed is None:
            return time.time()
        return self._start_t + (time.monotonic() - self._wall0) * self._speed

    def now(self) -> datetime:
        seconds = self.now_t()
        return datetime.fromtimestamp(seconds, tz=UTC)

    def wall_delay(self, sim_t: float) -> float:
        """Wall-clock seconds until the simulated instant ``sim_t``."""
        ahead = sim_t - self.now_t()
        return ahead if self._speed is None else ahead / self._speed


class LabelFile:
    """JSON lines of ground-truth labels, appended and flushed one by one."""

    def __init__(self, sink: IO[str]) -> None:
        self._sink = sink
        self.written = 0

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path | None) -> Iterator[LabelFile | None]:
        if path is None:
            yield None
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as sink:
            yield cls(sink)

    def write(self, label: AnomalyLabel) -> None:
        self._sink.write(label.model_dump_json() + "\n")
        self._sink.flush()
        self.written += 1


class Simulator:
    """A planned fleet, its clock and its transport: one run."""

    def __init__(self, settings: SimulatorSettings, plan: Plan) -> None:
        self.settings = settings
        self.plan = plan
        self.clock = SimClock(int(plan.start.timestamp()), settings.speed)
        self.labels: LabelFile | None = None
        self.journal: JournalWriter | None = None
        namespace = settings.topic_namespace
        runtimes = plan.runtimes
        self.transport = FleetTransport(
            [model.spec for model in plan.fleet],
            topics=MqttTopics(namespace),
            broker=BrokerOptions(
                host=settings.mqtt.host,
                port=settings.mqtt.port,
                auth=settings.mqtt.auth(),
            ),
            mode=settings.connection_mode,
            client_prefix=settings.client_prefix(plan.seed),
            now=self.clock.now,
            interval_of=lambda i: runtimes[i].interval_s,
            presence_of=lambda i: Presence.ONLINE if runtimes[i].online else Presence.OFFLINE,
            on_command=self.on_command,
            labels_topic=settings.labels_topic,
            operator=(
                (settings.operator_username, settings.operator_password.get_secret_value())
                if settings.operator_password is not None
                else None
            ),
            backlog=settings.backlog,
            max_inflight=settings.max_inflight,
            device_key=settings.device_key.get_secret_value() if settings.device_key else None,
            on_reading_acked=self._journal_acked if settings.journal_file else None,
            resend_window_s=settings.resend_window_s,
        )
        self._heap: list[tuple[int, int]] = []

    def dispatch(self, i: int, events: Sequence[Event]) -> None:
        if not events:
            return
        self.transport.publish(i, events)
        if self.labels is not None:
            for event in events:
                if isinstance(event, AnomalyLabel):
                    self.labels.write(event)

    def _journal_acked(self, _i: int, reading: Reading) -> None:
        if self.journal is not None:
            self.journal.acked(reading)

    def on_command(self, i: int, payload: bytes) -> None:
        runtime = self.plan.runtimes[i]
        try:
            command = DeviceCommand.model_validate_json(payload)
        except ValidationError as exc:
            log.warning(
                "%s: invalid command refused (%s): %r",
                runtime.device_id,
                exc.errors()[0]["msg"],
                payload[:500],
            )
            return
        log.info("%s: command %s %s", runtime.device_id, command.command_id, command.action)
        before = runtime.next_t
        self.dispatch(i, runtime.command(command, int(self.clock.now_t())))
        max_ticks = self.settings.max_ticks
        if runtime.next_t != before and (max_ticks is None or runtime.ticks < max_ticks):
            heapq.heappush(self._heap, (runtime.next_t, i))  # a new interval: a fresh entry

    async def publish_loop(self) -> None:
        max_ticks = self.settings.max_ticks
        runtimes = self.plan.runtimes
        heap = self._heap
        heap.extend((runtime.next_t, i) for i, runtime in enumerate(runtimes))
        heapq.heapify(heap)
        transport, clock = self.transport, self.clock
        while heap:
            delay = clock.wall_delay(heap[0][0])
            if delay > 0:
                await asyncio.sleep(delay)
            now_t = clock.now_t()
            made = 0
            while heap and heap[0][0] <= now_t and made < BATCH:
                due_t, i = heapq.heappop(heap)
                runtime = runtimes[i]
                if due_t != runtime.next_t:
                    continue  # superseded by an interval change
                self.dispatch(i, runtime.tick())
                made += 1
                if max_ticks is None or runtime.ticks < max_ticks:
                    heapq.heappush(heap, (runtime.next_t, i))
            await transport.backlog.room()
            if made >= BATCH:
                await asyncio.sleep(0)

    async def progress_loop(self, every_s: float) -> None:
        transport = self.transport
        last_t, last_n = time.monotonic(), 0
        while True:
            await asyncio.sleep(every_s)
            now, published = time.monotonic(), transport.published
            up = sum(1 for c in transport.connections if c.is_up)
            log.info(
                "published %d readings (%.0f/s), %d awaiting PUBACK, %d/%d connections up, "
                "simulated time %s",
                published,
                (published - last_n) / (now - last_t),
                transport.backlog.count,
                up,
                len(transport.connections),
                self.clock.now().isoformat(timespec="seconds"),
            )
            last_t, last_n = now, published

    async def run(self) -> None:
        settings, plan = self.settings, self.plan
        log.info(
            "simulating %d devices from %s, every %ds, %s%s",
            len(plan.fleet),
            plan.start.isoformat(),
            plan.interval_s,
            f"speed x{settings.speed:g}" if settings.speed else "live",
            f", scenarios {', '.join(plan.scenarios)}" if plan.scenarios else "",
        )
        began = time.monotonic()
        with (
            LabelFile.open(settings.labels_file) as labels,
            JournalWriter.open(settings.journal_file) as journal,
        ):
            self.labels, self.journal = labels, journal
            async with self.transport:
                self.clock.restart()
                helpers = []
                if settings.progress_s:
                    progress = self.progress_loop(settings.progress_s)
                    helpers.append(asyncio.create_task(progress, name="progress"))
                if journal is not None:
                    flushing = journal.flush_loop(settings.journal_flush_s)
                    helpers.append(asyncio.create_task(flushing, name="journal"))
                try:
                    await self.publish_loop()
                    await self.transport.backlog.drained()
                finally:
                    for helper in helpers:
                        helper.cancel()
        elapsed = time.monotonic() - began
        log.info(
            "published %d readings from %d devices in %.1fs; done",
            self.transport.published,
            len(plan.fleet),
            elapsed,
        )


def ensure_file_descriptors(connections: int) -> None:
    """Raise the soft limit on open files to what the connections need, or say what to do."""
    needed = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SimulatorError(
            f"{connections} connections need about {needed} open files but the limit is {hard}; "
            "use --connections pooled:N or raise the limit (ulimit -n)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def identities(settings: SimulatorSettings) -> DeviceIdentities:
    """The broker identities a run with ``settings`` connects with (nothing is connected)."""
    plan = make_plan(settings)
    return fleet_identities(
        [model.spec.device_id for model in plan.fleet],
        settings.connection_mode,
        settings.client_prefix(plan.seed),
    )


async def run(settings: SimulatorSettings) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    plan = make_plan(settings)
    ensure_file_descriptors(settings.connection_mode.connections_for(len(plan.fleet)))
    await Simulator(settings, plan).run()
