"""Precision and recall of the alerts per kind, against the anomalies the simulator injected.

Replays the fleet ``wattstream run`` starts (its plan: devices, history, interval, planned
anomalies; every anomaly kind by default) through the stream worker's own processing code
(:class:`stream.worker.processor.EventProcessor`, the served model from ``artifacts/``), with
the database and Kafka replaced by lists: the same alerts the pipeline would raise, in seconds
and deterministic. The simulator's ground-truth labels come from the same run. Prints one line
per kind and writes bench/results/alert_quality.json.

    python bench/alert_quality.py --devices 20 --history 3d

``tests/e2e/test_first_run.py`` scores the real pipeline's alerts the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schema.device_messages import AnomalyKind, AnomalyLabel, DeviceBirth, Location
from schema.results import Alert
from schema.topics import KafkaTopics
from schema.wire import Reading
from simulator.app import make_plan
from simulator.settings import SimulatorSettings
from simulator.weather import region_of
from stream.core.alertscore import KindScore, ScoredAlert, score
from stream.core.hourclose import ForecastRequest
from stream.forecast import Forecaster, ForecastInput, load_latest
from stream.worker.processor import (
    EventProcessor,
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

    async def write(self, batch: SinkBatch) -> None:
        for alert in batch.alerts:
            self.alerts[alert.alert_id] = alert  # an upsert by key

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

    async def forecast(self, requests: Sequence[ForecastRequest]) -> tuple[list[float], str]:
        inputs = [
            ForecastInput(r.device_id, r.kind, r.tz, r.target.start, r.history_kwh)
            for r in requests
        ]
        return [float(v) for v in self._model.forecast(inputs)], self._model.model_id


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
    args = parser.parse_args()
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
