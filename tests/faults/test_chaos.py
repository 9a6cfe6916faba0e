"""Chaos: kill -9 and restart the bridge, Kafka, the stream worker, PostgreSQL and Mosquitto in
turn while a fleet publishes; after the drain the delivery audit finds nothing missing, nothing
stored twice and exactly one hourly, forecast and health row per (device, closed hour). Then
scale-out: two workers share the partitions, one is killed -9 and restarted, the other stopped
for good, and the audit is as clean.

A private cluster (own home, free ports). One round by default (each component killed once);
``make chaos`` runs more (``WATTSTREAM_CHAOS_ROUNDS`` and the other ``ChaosPlan`` fields).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.audit.compare import AuditReport
from tests.conftest import Spawn, free_port
from tests.fixtures.bridge import scrape
from tests.fixtures.chaos import ChaosPlan, ChaosRun, private_cluster
from tests.fixtures.waiting import wait_until
from wattstream.localcluster import ClusterSettings

ROUNDS = int(os.environ.get("WATTSTREAM_CHAOS_ROUNDS", "1"))
pytestmark = [pytest.mark.faults, pytest.mark.timeout(420 + 300 * ROUNDS)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSettings]:
    home = os.environ.get("WATTSTREAM_CHAOS_HOME")
    with private_cluster(
        Path(home) if home else tmp_path_factory.mktemp("chaos") / "home"
    ) as settings:
        yield settings


def assert_clean(report: AuditReport, plan: ChaosPlan) -> None:
    assert report.ok, "\n".join(report.lines())
    assert report.readings.missing == report.readings.duplicated == 0
    steps = 1 + len(plan.components) * plan.rounds  # each waits for this many new readings
    assert report.readings.stored >= plan.progress_readings * steps
    for table, tally in report.hours.items():
        assert tally.expected > 0, f"no {table} rows were due: the run was too short"
        assert tally.missing == tally.duplicated == tally.extra == 0


async def test_every_component_killed_loses_and_doubles_nothing(
    cluster: ClusterSettings, spawn: Spawn, tmp_path: Path, record_property: object
) -> None:
    run = ChaosRun(cluster, spawn, tmp_path, ChaosPlan.from_env(rounds=ROUNDS))
    report = await run.run()
    assert_clean(report, run.plan)

    # The same audit as a command: exit status 0, and its findings as Prometheus metrics.
    port = free_port()
    audit = spawn(
        "audit",
        "stream.audit",
        {
            "WATTSTREAM_AUDIT_JOURNAL": str(run.journal),
            "WATTSTREAM_AUDIT_DATABASE_URL": run.endpoints.database_url,
        },
    )
    assert await asyncio.to_thread(audit.process.wait, 60) == 0, audit.log_tail()
    assert "audit: OK" in audit.log_tail()
    watch = spawn(
        "audit-watch",
        "stream.audit",
        {
            "WATTSTREAM_AUDIT_JOURNAL": str(run.journal),
            "WATTSTREAM_AUDIT_DATABASE_URL": run.endpoints.database_url,
        },
        "--watch-s",
        "2",
        "--metrics-port",
        str(port),
    )

    def scraped() -> dict[str, float] | None:
        metrics = scrape(port)
        return metrics if metrics.get("wattstream_audit_runs_total", 0) >= 1 else None

    metrics = await asyncio.to_thread(
        wait_until, "audit metrics", scraped, 60, watched=[watch], tolerate=(OSError,)
    )
    assert metrics["wattstream_audit_ok"] == 1.0
    assert metrics['wattstream_audit_readings{outcome="missing"}'] == 0.0
    assert metrics['wattstream_audit_readings{outcome="stored"}'] == report.readings.stored
    expected = report.hours["hourly"].expected
    assert metrics['wattstream_audit_hours{outcome="expected",table="hourly"}'] == expected
    print("\n".join(run.log.events))


async def test_two_workers_one_killed_one_stopped_lose_and_double_nothing(
    cluster: ClusterSettings, spawn: Spawn, tmp_path: Path
) -> None:
    """Two worker processes in one consumer group share the 6 partitions. The first is killed
    -9 and restarted (its partitions go to the second after the session timeout, and come back
    in a later rebalance), then the second is stopped for good: every partition, with its table
    state and its offsets, ends with the first. The audit is as clean as with one worker."""
    plan = ChaosPlan.from_env(workers=2, components=("worker", "stop-worker2"))
    run = ChaosRun(cluster, spawn, tmp_path, plan)
    report = await run.run()
    assert_clean(report, plan)
    assert "worker2" not in run.processes
    print("\n".join(run.log.events))
