"""The stream worker's Prometheus metrics, served on ``/metrics`` by its health server.

Counted per batch from the processor's :class:`~stream.worker.processor.BatchReport` (a handful
of increments per batch, nothing per reading: the hot path stays as it is), and the consumer
lag per partition from the periodic health check.

====================================================  ==========================================
``wattstream_worker_consumer_lag{topic,partition}``   readings not processed yet, per partition
``wattstream_worker_lag``                             the same, summed (the stall check's input)
``wattstream_worker_batch_size``                      histogram: events per batch
``wattstream_worker_batch_seconds``                   histogram: a batch from hand-over to ack
``wattstream_worker_batches_total``                   batches committed
``wattstream_worker_events_total``                    events processed
``wattstream_worker_hours_closed_total``              device hours closed by the watermark
``wattstream_worker_forecasts_total``                 forecasts made (re-forecasts included)
``wattstream_worker_rows_committed_total{table}``     rows written, per table
``wattstream_worker_restatements_total``              closed hours a late reading restated
``wattstream_worker_dead_letters_total``              events sent to the dead-letter topic
``wattstream_worker_states_written_total``            device states written to the table
``wattstream_worker_checkpoints_total``               batches that wrote every state kept back
``wattstream_worker_phase_seconds_total{phase}``      a batch's time per phase (where it waits)
``wattstream_worker_seconds_since_progress``          since the last completed batch
====================================================  ==========================================
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.worker.processor import BatchReport

BATCH_SIZES = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000)
BATCH_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.lag = Gauge("wattstream_worker_lag", "Readings not yet processed", registry=r)
        self.partition_lag = Gauge(
            "wattstream_worker_consumer_lag",
            "Readings not yet processed, per partition this worker is assigned",
            ["topic", "partition"],
            registry=r,
        )
        self.idle = Gauge(
            "wattstream_worker_seconds_since_progress",
            "Seconds since the last processed batch",
            registry=r,
        )
        self.batches = Counter("wattstream_worker_batches", "Batches processed", registry=r)
        self.batch_size = Histogram(
            "wattstream_worker_batch_size", "Events per batch", buckets=BATCH_SIZES, registry=r
        )
        self.batch_seconds = Histogram(
            "wattstream_worker_batch_seconds",
            "Seconds per batch, from hand-over to acknowledgement (rows, results, changelog)",
            buckets=BATCH_SECONDS,
            registry=r,
        )
        self.events = Counter("wattstream_worker_events", "Events processed", registry=r)
        self.hours_closed = Counter(
            "wattstream_worker_hours_closed", "Device hours closed by the watermark", registry=r
        )
        self.forecasts = Counter(
            "wattstream_worker_forecasts", "Forecasts made (re-forecasts included)", registry=r
        )
        self.rows = Counter(
            "wattstream_worker_rows_committed",
            "Rows written in committed batches, per table",
            ["table"],
            registry=r,
        )
        self.restatements = Counter(
            "wattstream_worker_restatements",
            "Closed hours restated by a late reading",
            registry=r,
        )
        self.dead_letters = Counter(
            "wattstream_worker_dead_letters", "Events sent to the dead-letter topic", registry=r
        )
        self.states_written = Counter(
            "wattstream_worker_states_written",
            "Device states written to the table's changelog",
            registry=r,
        )
        self.checkpoints = Counter(
            "wattstream_worker_checkpoints",
            "Batches that wrote every state kept back since the last, and the positions",
            registry=r,
        )
        self.phase_seconds = Counter(
            "wattstream_worker_phase_seconds",
            "Seconds of the batches per phase: apply, close_and_forecast, database, publish,"
            " states, changelog (waiting for Kafka's acknowledgement of the table's writes)",
            ["phase"],
            registry=r,
        )
        self._known: set[tuple[str, str]] = set()

    def batch_done(self, report: BatchReport, seconds: float, *, changelog_s: float = 0.0) -> None:
        """One committed batch (a few increments, whatever its size); ``changelog_s``: the
        wait for Kafka's acknowledgement of its table writes."""
        self.batches.inc()
        self.batch_size.observe(report.events)
        self.batch_seconds.observe(seconds)
        self.events.inc(report.events)
        if report.hours_closed:
            self.hours_closed.inc(report.hours_closed)
        if report.forecasts:
            self.forecasts.inc(report.forecasts)
        if report.restatements:
            self.restatements.inc(report.restatements)
        if report.dead_letters:
            self.dead_letters.inc(report.dead_letters)
        if report.states_written:
            self.states_written.inc(report.states_written)
        if report.checkpoint:
            self.checkpoints.inc()
        for phase, spent in report.phases.items():
            self.phase_seconds.labels(phase=phase).inc(spent)
        self.phase_seconds.labels(phase="changelog").inc(changelog_s)
        for table, count in report.rows.items():
            if count:
                self.rows.labels(table=table).inc(count)

    def set_lag(self, topic: str, lags: dict[int, int]) -> int:
        """The lag of each assigned partition; partitions no longer assigned are dropped.
        Returns the total."""
        now = {(topic, str(partition)) for partition in lags}
        for gone in self._known - now:
            self.partition_lag.remove(*gone)
        self._known = now
        for partition, lag in lags.items():
            self.partition_lag.labels(topic=topic, partition=str(partition)).set(lag)
        total = sum(lags.values())
        self.lag.set(total)
        return total
