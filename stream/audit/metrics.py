"""The audit's findings as Prometheus metrics, in a registry of its own.

==============================================  ================================================
``wattstream_audit_readings{outcome}``          expected, stored, missing, duplicated, extra
``wattstream_audit_hours{table,outcome}``       the same per result table (hourly, forecasts,
                                                health)
``wattstream_audit_ok``                         1 if the last audit found no loss or duplicate
``wattstream_audit_runs_total``                 audits run
``wattstream_audit_failed_runs_total``          audits that found a loss or a duplicate
==============================================  ================================================

The counts are gauges: each is the latest audit's finding (a backlog that drains makes
``missing`` fall); the run counters only grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from stream.audit.compare import AuditReport, Tally

OUTCOMES = ("expected", "stored", "missing", "duplicated", "extra")


@dataclass(frozen=True)
class AuditMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    readings: Gauge = field(init=False)
    hours: Gauge = field(init=False)
    ok: Gauge = field(init=False)
    runs: Counter = field(init=False)
    failed_runs: Counter = field(init=False)

    def __post_init__(self) -> None:
        reg = self.registry
        values = {
            "readings": Gauge(
                "wattstream_audit_readings",
                "Readings per outcome of the last audit",
                ["outcome"],
                registry=reg,
            ),
            "hours": Gauge(
                "wattstream_audit_hours",
                "Device-hours per result table and outcome of the last audit",
                ["table", "outcome"],
                registry=reg,
            ),
            "ok": Gauge("wattstream_audit_ok", "1 if the last audit passed", registry=reg),
            "runs": Counter("wattstream_audit_runs", "Audits run", registry=reg),
            "failed_runs": Counter(
                "wattstream_audit_failed_runs", "Audits that found loss or duplicates", registry=reg
            ),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def record(self, report: AuditReport) -> None:
        def counts(tally: Tally) -> dict[str, int]:
            return {outcome: getattr(tally, outcome) for outcome in OUTCOMES}

        for outcome, value in counts(report.readings).items():
            self.readings.labels(outcome).set(value)
        for table, tally in report.hours.items():
            for outcome, value in counts(tally).items():
                self.hours.labels(table, outcome).set(value)
        self.ok.set(1 if report.ok else 0)
        self.runs.inc()
        if not report.ok:
            self.failed_runs.inc()
