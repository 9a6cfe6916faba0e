"""Cold start and isolation (issue 20), every service its own process on a fresh namespace.

- Whatever starts first (worker, bridge or simulator), the first hourly row is committed within
  30 s of the first reading, and the delivery audit is clean at the end (when the simulator
  starts first, after compose's one-shot step that creates the bridge's MQTT session). The
  worker is killed (SIGKILL) once on the way, while it creates its topics, and restarted.
- Two pipelines in two namespaces on one cluster, with the same device ids and the same
  (default) worker app id, keep apart: their consumer groups, changelogs and rows.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from schema.connections import DatabaseConnection
from schema.topics import KafkaTopics, changelog_topic, scoped_app_id
from stream.audit.app import audit_once
from stream.audit.settings import AuditSettings
from tests.fixtures.waiting import wait_until_async

from ..conftest import Services, Spawn, Spawned, migrated_database, provision_simulator
from ..fixtures import worker_fleet as fleet

pytestmark = pytest.mark.e2e

SIM_DEVICES, SIM_INTERVAL_S, SIM_TICKS, SIM_SPEED = 5, 120, 240, 1440.0
"""8 simulated hours, an hour every 2.5 s of wall time."""


async def wait_until(
    what: str, probe: Callable[[], Awaitable[object]], within_s: float, *watched: Spawned
) -> None:
    """:func:`tests.fixtures.waiting.wait_until_async`, failing with every watched log's tail."""

    def tails() -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(25)}" for p in watched)

    await wait_until_async(what, probe, within_s, watched=watched, detail=tails)


async def count(database: str, table: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        n: int = await conn.fetchval(f"SELECT count(*) FROM {table}")
        return n
    finally:
        await conn.close()


class Pipeline:
    """Bridge, worker and simulator of one namespace, started in any order."""

    def __init__(
        self, services: Services, spawn: Spawn, database: str, namespace: str, workdir: Path
    ) -> None:
        self.services, self._spawn, self.database, self.namespace = (
            services,
            spawn,
            database,
            namespace,
        )
        self.journal = workdir / f"{namespace}-journal.jsonl"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, Spawned] = {}
        self._runs = 0

    def worker(self) -> Spawned:
        self._runs += 1
        proc = self._spawn(
            f"stream-{self._runs}",
            "stream.worker",
            {
                "WATTSTREAM_STREAM_KAFKA_BOOTSTRAP": self.services.kafka_bootstrap,
                "WATTSTREAM_STREAM_DATABASE_URL": self.database,
                "WATTSTREAM_STREAM_TOPIC_NAMESPACE": self.namespace,
                "WATTSTREAM_STREAM_DATA_DIR": str(self.workdir / "faust"),
                "WATTSTREAM_STREAM_SESSION_TIMEOUT_S": "10",
                "WATTSTREAM_STREAM_STOP_TIMEOUT_S": "15",
            },
        )
        self.procs["worker"] = proc
        return proc

    def bridge(self, *args: str) -> Spawned:
        proc = self._spawn(
            "bridge-session" if args else "bridge",
            "stream.bridge",
            {
                "WATTSTREAM_BRIDGE_MQTT_HOST": self.services.mqtt_host,
                "WATTSTREAM_BRIDGE_MQTT_PORT": str(self.services.mqtt_port),
                "WATTSTREAM_BRIDGE_KAFKA_BOOTSTRAP": self.services.kafka_bootstrap,
                "WATTSTREAM_BRIDGE_TOPIC_NAMESPACE": self.namespace,
                "WATTSTREAM_BRIDGE_MQTT_SESSION_EXPIRY_S": "600",
                "WATTSTREAM_BRIDGE_METRICS_PORT": "0",
            },
            *args,
        )
        if not args:
            self.procs["bridge"] = proc
        return proc

    def prepare(self) -> None:
        """What compose's one-shots do before any service: the topics and the bridge's MQTT
        session (so readings published before the bridge runs are queued for it)."""
        assert self.bridge("--prepare-only").process.wait(timeout=60) == 0

    def simulator(self, *fleet: str) -> Spawned:
        """The simulator; ``fleet``: its fleet flags instead of this module's 8-hour fleet."""
        args = (
            f"--mqtt-port={self.services.mqtt_port}",
            f"--topic-namespace={self.namespace}",
            *(
                fleet
                or (
                    f"--devices={SIM_DEVICES}",
                    f"--interval-s={SIM_INTERVAL_S}",
                    "--start=2026-01-05T00:00:00+00:00",
                    f"--max-ticks={SIM_TICKS}",
                    f"--speed={SIM_SPEED}",
                )
            ),
            f"--journal={self.journal}",
            "--journal-flush-s=0.1",
        )
        provision_simulator(self.services, *args)
        proc = self._spawn(
            "simulator", "simulator", {"WATTSTREAM_SIM_MQTT_HOST": self.services.mqtt_host}, *args
        )
        self.procs["simulator"] = proc
        return proc

    def running(self) -> list[Spawned]:
        return [p for name, p in self.procs.items() if name != "simulator"]


@pytest.mark.parametrize(
    "order",
    [
        ("worker", "bridge", "simulator"),
        ("bridge", "worker", "simulator"),
        ("simulator", "bridge", "worker"),
    ],
    ids="-".join,
)
async def test_any_start_order_gives_the_first_hour_within_30_s_and_a_clean_audit(
    services: Services,
    database: str,
    namespace: str,
    spawn: Spawn,
    tmp_path: Path,
    order: tuple[str, str, str],
) -> None:
    pipeline = Pipeline(services, spawn, database, namespace, tmp_path)

    async def first_reading() -> bool:
        journal = pipeline.journal
        return journal.exists() and journal.stat().st_size > 0

    if order[0] == "simulator":
        pipeline.prepare()  # as compose does: without it no one would hold the first readings
    published = None
    for name in order:
        proc = getattr(pipeline, name)()
        if name == "simulator":
            await wait_until("the first reading", first_reading, 120, proc, *pipeline.running())
            published = time.monotonic()
        if name == "worker" and order[0] == "worker":
            # Killed while it creates its topics, then started again.
            await wait_until(
                "topic creation", _logged(proc, "kafka: creating missing topics"), 60, proc
            )
            proc.process.send_signal(signal.SIGKILL)
            proc.process.wait(timeout=10)
            pipeline.worker()
        if name == "bridge":
            await wait_until("the bridge's subscription", _logged(proc, "subscribed"), 60, proc)
        if name == "worker":
            # Started is not ready: the bound below is the pipeline's, not a process's start
            # on a loaded machine (the simulator-first order includes it and is not timed).
            ready = _logged(pipeline.procs["worker"], "Worker ready")
            await wait_until("the worker", ready, 120, pipeline.procs["worker"])

    async def first_hour() -> bool:
        return await count(database, "hourly") > 0

    await wait_until("the first hourly row", first_hour, 120, *pipeline.running())
    assert published is not None
    took = time.monotonic() - published
    # From the first reading the simulator's journal records as acknowledged by MQTT; when the
    # simulator starts first, the bridge's and the worker's start-up are inside the bound.
    assert took < 30, f"first hourly row {took:.1f} s after the first reading"
    assert pipeline.procs["simulator"].process.wait(timeout=120) == 0

    settings = AuditSettings(journal=pipeline.journal, database=DatabaseConnection(url=database))
    report = None

    async def clean() -> bool:
        nonlocal report
        report = await audit_once(settings)
        return report.ok

    await wait_until(f"a clean audit ({report})", clean, 120, *pipeline.running())


def _logged(proc: Spawned, text: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return text in proc.log.read_text(errors="replace")

    return probe


async def test_two_namespaces_on_one_cluster_keep_apart(
    services: Services, spawn: Spawn, tmp_path: Path
) -> None:
    first_ns, second_ns = f"a{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:10]}"
    async with migrated_database(services) as first_db, migrated_database(services) as second_db:
        first = Pipeline(services, spawn, first_db, first_ns, tmp_path)
        second = Pipeline(services, spawn, second_db, second_ns, tmp_path / "second")
        workers = [first.worker(), second.worker()]  # the same (default) app id for both
        messages = {ns: fleet.fleet_messages(KafkaTopics(ns)) for ns in (first_ns, second_ns)}
        half = len(messages[first_ns]) // 2
        await fleet.produce(services.kafka_bootstrap, messages[first_ns][:half])
        await fleet.produce(services.kafka_bootstrap, messages[second_ns])
        everything = fleet.READINGS

        async def second_done() -> bool:
            return await count(second_db, "readings") >= everything

        async def first_done() -> bool:
            return await count(first_db, "readings") >= half - fleet.DEVICES  # births are not rows

        await wait_until("the second pipeline's readings", second_done, 180, *workers)
        await wait_until("the first pipeline's readings", first_done, 180, *workers)
        conn = await asyncpg.connect(second_db)
        try:
            await fleet.check_invariants(conn)
        finally:
            await conn.close()
        assert await count(first_db, "readings") == half - fleet.DEVICES

        admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka_bootstrap)
        await admin.start()
        try:
            groups = {g[0] for g in await admin.list_consumer_groups()}
            topics = set(await admin.list_topics())
        finally:
            await admin.close()
        for ns in (first_ns, second_ns):
            app_id = scoped_app_id("wattstream-stream", ns)
            assert app_id in groups
            assert changelog_topic(app_id) in topics
