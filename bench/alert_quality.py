"""Precision and recall of the alerts per kind, against the anomalies the simulator injected.

Replays the fleet ``wattstream run`` starts (its plan: devices, history, interval, planned
anomalies; every anomaly kind by default) through the stream worker's own processing code
(:class:`stream.worker.processor.EventProcessor`, the served model from ``artifacts/``), with
the database and Kafka replaced by lists: the same alerts the pipeline would raise, in seconds
and deterministic. The simulator's ground-truth labels come from the same run. Prints one line
per kind and writes bench/results/alert_quality.json.

    python bench/alert_quality.py --devices 20 --history-hours 72

With ``--labels FILE`` it scores a real run instead: the labels ``wattstream run`` wrote
(``.wattstream/run/labels.jsonl``) against the alerts in the database (``--database-url``;
default: the local cluster's), over the hours since the run's first reading. Nothing is
written then. ``tests/e2e/test_first_run.py`` scores the real pipeline's alerts the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from api.alertscore import KindScore, ScoredAlert, score
from schema.device_messages import AnomalyKind, AnomalyLabel, DeviceBirth, Location
from schema.results import Alert, AlertFigures
from schema.topics import KafkaTopics
from schema.wire import Reading
from simulator.app import make_plan
from simulator.settings import SimulatorSettings
from simulator.weather import region_of
from stream.core.hourclose import ForecastRequest
from stream.forecast import Forecaster, ForecastInput, load_latest
from stream.worker.processor import (
    EventProcessor,
    ForecastBatch,
    OutMessage,
    ProcessorSettings,
    SinkBatch,
    SourceEvent,
)
from wattstream.firstrun import FirstRun

RESULTS = Path(__file__).parent / "results"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
NOW = datetime(2026, 11, 27, 12, 7, tzinfo=UTC)
"""A fixed 'now' (the run's live time): the same history every time."""


@dataclass
class MemorySink:
    alerts: dict[str, Alert] = field(default_factory=dict)

    async def write(self, batch: SinkBatch) -> frozenset[str]:
        for alert in batch.alerts:
            self.alerts[alert.alert_id] = alert  # an upsert by key
        return frozenset()  # no person resolves anything in a replay

    async def stored_offsets(self) -> dict[tuple[str, int], int]:
        return {}


class NoPublisher:
    async def publish(self, messages: Sequence[OutMessage]) -> None:
        return None


class ModelForecasts:
    def __init__(self, model: Forecaster) -> None:
        self._model = model

    @property
    def history_hours(self) -> int:
        return int(self._model.spec.history_hours)

    def supports(self, kind: str) -> bool:
        return bool(self._model.supports(kind))

    async def forecast(self, requests: Sequence[ForecastRequest]) -> ForecastBatch:
        inputs = [
            ForecastInput(r.device_id, r.kind, r.tz, r.target.start, r.history_kwh)
            for r in requests
        ]
        kwh = [float(v) for v in self._model.forecast(inputs)]
        return ForecastBatch(kwh, self._model.model_id)  # next hours only: alerts need no more


async def replay(
    plan: FirstRun, model: Forecaster, now: datetime = NOW
) -> tuple[list[Alert], list[AnomalyLabel]]:
    """The alerts the worker raises over ``plan``'s history up to ``now``, and the labels."""
    values = plan.simulator_values(now)
    settings = SimulatorSettings(
        devices=plan.devices,
        interval_s=plan.interval_s,
        start=datetime.fromisoformat(values["start"]),
        anomalies=json.loads(values["anomalies"]),
    )
    sim = make_plan(settings, now=now)
    topics = KafkaTopics()
    sink = MemorySink()
    clock = [sim.start]
    processor = EventProcessor(
        topics=topics,
        states={},
        sink=sink,
        forecasts=ModelForecasts(model),
        publisher=NoPublisher(),
        settings=ProcessorSettings(lateness=timedelta(minutes=5), max_silent=timedelta(hours=3)),
        clock=lambda: clock[0],
    )
    births = []
    for offset, spec in enumerate(m.spec for m in sim.fleet):
        latitude, longitude = spec.place
        birth = DeviceBirth(
            device_id=spec.device_id,
            kind=spec.kind,
            tz=spec.tz,
            location=Location(latitude=latitude, longitude=longitude, name=region_of(spec.tz).name),
            nominal_kw=spec.nominal_kw,
            firmware=spec.firmware_version,
            interval_s=plan.interval_s,
            ts=sim.start,
        )
        births.append(
            SourceEvent(topics.device_birth, 0, offset, None, birth.model_dump_json().encode())
        )
    await processor.process(births)
    labels: list[AnomalyLabel] = []
    offset = 0
    end_t = now.timestamp()
    while sim.runtimes[0].next_t < end_t:
        batch = []
        for runtime in sim.runtimes:
            for event in runtime.tick():
                if isinstance(event, AnomalyLabel):
                    labels.append(event)
                elif isinstance(event, Reading):
                    value = event.model_dump_json().encode()
                    batch.append(
                        SourceEvent(topics.readings, 0, offset, event.device_id.encode(), value)
                    )
                    offset += 1
        clock[0] = datetime.fromtimestamp(sim.runtimes[0].next_t, tz=UTC)
        await processor.process(batch)
    return list(sink.alerts.values()), labels


async def stored_alerts(database_url: str, since: datetime) -> list[ScoredAlert]:
    """The alerts of a real run (opened since ``since``), as scoring sees them."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM alerts WHERE last_hour_start >= $1", since)
    finally:
        await conn.close()
    fields = set(AlertFigures.model_fields)
    return [
        ScoredAlert.of(AlertFigures(**{k: v for k, v in dict(r).items() if k in fields}), r["kind"])
        for r in rows
    ]


def score_run(labels_file: Path, database_url: str | None, since: datetime | None) -> None:
    labels = [AnomalyLabel.model_validate_json(x) for x in labels_file.read_text().splitlines()]
    if not labels:
        sys.exit(f"{labels_file}: no labels (no anomaly injected yet?)")
    if database_url is None:
        from wattstream import localcluster  # noqa: PLC0415 - only for a real run

        database_url = localcluster.endpoints(localcluster.ClusterSettings()).database_url
    if since is None:  # the first run's history: three days, its anomalies 12 h before live
        since = min(label.start for label in labels) - timedelta(days=3)
    alerts = asyncio.run(stored_alerts(database_url, since))
    print(f"{len(alerts)} alerts since {since:%Y-%m-%d %H:%M}, {len(labels)} injected anomalies")
    for kind_score in score(alerts, labels).values():
        print(kind_score.line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--history-hours", type=int, default=72)
    parser.add_argument("--interval-s", type=int, default=300)
    parser.add_argument(
        "--anomaly",
        action="append",
        choices=[k.value for k in AnomalyKind],
        help="planned anomalies, one device each (default: one of every kind)",
    )
    parser.add_argument(
        "--now",
        type=datetime.fromisoformat,
        default=NOW,
        help="live time of the replayed run (ISO-8601 with offset; another period, other weather)",
    )
    parser.add_argument("--artifacts-dir", type=Path, default=ARTIFACTS)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--labels", type=Path, help="score a real run: its labels file")
    parser.add_argument("--database-url", help="with --labels (default: the local cluster's)")
    parser.add_argument(
        "--since",
        type=datetime.fromisoformat,
        help="with --labels: alerts of hours from here (default: 3 days before the first label)",
    )
    args = parser.parse_args()
    if args.labels is not None:
        score_run(args.labels, args.database_url, args.since)
        return
    kinds = tuple(AnomalyKind(k) for k in (args.anomaly or [k.value for k in AnomalyKind]))
    plan = FirstRun(
        devices=args.devices,
        history=timedelta(hours=args.history_hours),
        interval_s=args.interval_s,
        anomalies=kinds,
    )
    alerts, labels = asyncio.run(replay(plan, load_latest(args.artifacts_dir), args.now))
    scores = score([ScoredAlert.of(a, a.alert_kind) for a in alerts], labels)
    print(f"{len(alerts)} alerts, {len(labels)} injected anomalies, {plan.devices} devices")
    for kind_score in scores.values():
        print(kind_score.line())
    for alert in sorted(alerts, key=lambda a: (a.alert_kind, a.device_id, a.hour_start)):
        print(
            f"  {alert.alert_kind:<12} {alert.device_id} {alert.hour_start:%d %H:%M} "
            f"x{alert.hours} {alert.severity:<8} {alert.message}"
        )
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        out: dict[str, object] = {
            "plan": {
                "devices": plan.devices,
                "history_hours": args.history_hours,
                "interval_s": plan.interval_s,
                "anomalies": [k.value for k in kinds],
                "now": args.now.isoformat(),
            },
            "alerts": len(alerts),
            "kinds": {k: _figures(s) for k, s in scores.items()},
        }
        (RESULTS / "alert_quality.json").write_text(json.dumps(out, indent=2) + "\n")


def _figures(kind_score: KindScore) -> dict[str, object]:
    return {
        **asdict(kind_score),
        "precision": kind_score.precision,
        "recall": kind_score.recall,
    }


if __name__ == "__main__":
    main()
