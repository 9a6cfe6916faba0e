"""The first run (issue 19): ``wattstream run``'s plan, history then live, on a fresh namespace.

Bridge, worker and simulator run as their own processes, the simulator with the settings the
launcher gives it (``FirstRun.simulator_values``: history in the past, one planned anomaly of
every kind on ``dev-00001`` to ``dev-00004``, the delivery journal, the ground-truth labels).
Within the budget every device must have a forecast and a coloured health status, as the
launcher's progress watch reports it; the alerts, scored against the labels
(:mod:`api.alertscore`), must catch every injected anomaly with the alert kind meant for
it, and few alerts may be false. The labels also travel the pipeline (MQTT, bridge, Kafka,
worker) into the database, where the API scores the alerts the same way
(``GET /api/v1/alerts/quality``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.alertscore import ScoredAlert, score
from schema.commandline import variables
from schema.device_messages import AnomalyKind, AnomalyLabel
from schema.results import AlertFigures
from simulator.settings import SimulatorSettings
from tests.fixtures.api import start_api, wait_until_ready
from tests.fixtures.bridge import spawn_bridge
from tests.fixtures.waiting import wait_until_async
from wattstream.firstrun import FirstRun, Progress, read_progress_async

from ..conftest import Services, Spawn, Spawned

pytestmark = pytest.mark.e2e

BUDGET_S = 120.0
"""From starting the processes to a complete dashboard (the launcher's two minutes include
the same: the worker loading TensorFlow, the history published and processed)."""
HOUR = timedelta(hours=1)
MIN_PRECISION = 0.6
"""Of all alerts over the run, at least this share must be about an injected anomaly
(``bench/alert_quality.py`` replays larger fleets: see its results)."""


async def spawn_pipeline(
    services: Services, spawn: Spawn, database: str, namespace: str, plan: FirstRun
) -> tuple[list[Spawned], datetime]:
    bridge = spawn_bridge(spawn, services, namespace, metrics_port=0)
    worker = spawn(
        "stream",
        "stream.worker",
        {
            "WATTSTREAM_STREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
            "WATTSTREAM_STREAM_DATABASE_URL": database,
            "WATTSTREAM_STREAM_APP_ID": f"firstrun-{namespace}",
            "WATTSTREAM_STREAM_TOPIC_NAMESPACE": namespace,
            "WATTSTREAM_STREAM_DATA_DIR": str(bridge.log.parent / "faust"),
        },
    )
    # Devices publish once the bridge has subscribed, as the launcher waits for bridge_ready.
    await wait_until_async(
        "the bridge's subscription",
        lambda: "subscribed" in bridge.log_tail(),
        60,
        interval_s=0.5,
        watched=[bridge, worker],
    )
    now = datetime.now(UTC)
    values = {
        "mqtt": {"host": services.mqtt_host, "port": services.mqtt_port},
        "topic_namespace": namespace,
        **plan.simulator_values(now),
    }
    # The session provisioned dev-00000..dev-00999 on the broker: this fleet's ids are among them.
    simulator = spawn("simulator", "simulator", variables(SimulatorSettings, values))
    return [bridge, worker, simulator], plan.start(now)


async def test_history_then_live_completes_the_dashboard_within_the_budget(
    services: Services, database: str, namespace: str, spawn: Spawn, tmp_path: Path
) -> None:
    plan = FirstRun(
        devices=8,
        history=timedelta(hours=48),
        interval_s=600,
        anomalies=(AnomalyKind.SPIKE, AnomalyKind.DRIFT, AnomalyKind.STUCK, AnomalyKind.DROPOUT),
        journal=tmp_path / "journal.jsonl",
        labels=tmp_path / "labels.jsonl",
    )
    assert plan.completes_in_history
    began = time.monotonic()
    processes, start = await spawn_pipeline(services, spawn, database, namespace, plan)
    seen: list[Progress] = []

    async def complete() -> Progress | None:
        seen.append(await read_progress_async(database, plan, start))
        return seen[-1] if seen[-1].complete else None

    def detail() -> str:
        last = seen[-1].line(time.monotonic() - began) if seen else "no progress read"
        return "\n".join([last, *(f"--- {p.name}\n{p.log_tail(15)}" for p in processes)])

    progress: Progress | None = await wait_until_async(
        "every device with a forecast and a coloured health status",
        complete,
        BUDGET_S,
        interval_s=2,
        watched=processes,
        tolerate=(OSError, asyncpg.PostgresError),
        detail=detail,
    )
    assert progress is not None
    print(f"dashboard complete after {time.monotonic() - began:.1f} s: {progress.line(0)}")
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT * FROM alerts WHERE hour_start >= $1", start)
        latest = await conn.fetch(
            "SELECT DISTINCT ON (device_id) device_id, status FROM health"
            " ORDER BY device_id, hour_start DESC"
        )
    finally:
        await conn.close()
    # Scored against what the simulator injected.
    assert plan.labels is not None
    labels = [
        AnomalyLabel.model_validate_json(line) for line in plan.labels.read_text().splitlines()
    ]
    assert sorted(label.anomaly for label in labels) == sorted(plan.anomalies)
    interval = timedelta(seconds=plan.interval_s)
    dropped = sum((x.end - x.start) // interval for x in labels if x.anomaly is AnomalyKind.DROPOUT)
    assert progress.readings >= plan.history_readings - dropped
    fields = set(AlertFigures.model_fields)
    alerts = [
        ScoredAlert.of(AlertFigures(**{k: v for k, v in dict(r).items() if k in fields}), r["kind"])
        for r in rows
    ]
    scores = score(alerts, labels)
    print("\n".join(s.line() for s in scores.values()))
    for r in sorted(rows, key=lambda r: (r["kind"], r["device_id"], r["hour_start"])):
        print(f"  {r['kind']} {r['device_id']} {r['hour_start']:%d %H:%M} {r['message']}")
    assert {k: s.recall for k, s in scores.items()} == {
        "level_shift": 1.0,
        "residual": 1.0,
        "silent": 1.0,
        "stuck": 1.0,
    }
    true_alerts = sum(s.true_alerts for s in scores.values())
    assert true_alerts >= MIN_PRECISION * len(alerts), [s.line() for s in scores.values()]
    # The same scores from the API, the labels having come through the pipeline.
    api, port = start_api(spawn, services, database, namespace)
    base = f"http://127.0.0.1:{port}"
    await wait_until_ready(api, base)
    window = {"start": start.isoformat(), "end": (datetime.now(UTC) + HOUR).isoformat()}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def served() -> dict[str, Any] | None:
            answer: dict[str, Any] = (
                await http.get("/api/v1/alerts/quality", params=window)
            ).json()
            return answer if answer["labels"] == len(labels) else None

        quality: dict[str, Any] | None = await wait_until_async(
            "every label in the database", served, 60, interval_s=1, watched=[api, *processes]
        )
    assert quality is not None
    by_kind = {k["kind"]: k for k in quality["kinds"]}
    assert {k: (q["recall"], q["injected"]) for k, q in by_kind.items()} == {
        k: (s.recall, s.injected) for k, s in scores.items()
    }
    assert sum(q["true_alerts"] for q in by_kind.values()) >= MIN_PRECISION * len(alerts)
    assert {r["status"] for r in latest} <= {"green", "amber", "red"}
    assert len(latest) == plan.devices
    # The launcher's journal: what `wattstream audit` reads.
    assert plan.journal is not None
    assert plan.journal.read_text().count("dev-00001") >= 1
