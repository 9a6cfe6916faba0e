"""How good the alerts are against the anomalies the simulator injected: pure, no I/O.

The simulator knows where it injected what (:class:`schema.device_messages.AnomalyLabel`, its
ground truth). Each anomaly kind has the alert kind meant to catch it (:data:`EXPECTED`). An
alert *matches* a label when both are about the same device and the alert's hours, from the
hour it opened to the hour it resolved, overlap the anomaly widened by :data:`SLACK` on each
side (the hour holding an anomaly's first reading may start before it; a forecast made from
anomalous history is off for a while after it).

* **precision** of an alert kind: the share of its alerts that match some label (of any kind:
  an alert on a device that really misbehaved is not a false alarm);
* **recall** of an anomaly kind: the share of its labels matched by an alert of the expected
  kind.

Both are ``None`` when there is nothing to divide by. ``GET /api/v1/alerts/quality`` serves
these scores from the stored alerts and labels; ``bench/alert_quality.py`` and the first-run e2e
test use them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schema.device_messages import AnomalyKind, AnomalyLabel
from schema.results import AlertFigures, AlertKind

HOUR = timedelta(hours=1)
SLACK = timedelta(hours=3)
EXPECTED: dict[AnomalyKind, AlertKind] = {
    AnomalyKind.SPIKE: "residual",
    AnomalyKind.DRIFT: "level_shift",
    AnomalyKind.STUCK: "stuck",
    AnomalyKind.DROPOUT: "silent",
}
"""The alert kind meant to catch each anomaly kind."""


@dataclass(frozen=True, slots=True)
class ScoredAlert:
    """What scoring needs of an alert (from a :class:`schema.results.Alert` or a table row)."""

    device_id: str
    kind: str
    opened: datetime
    until: datetime
    """Exclusive end: the hour it resolved, or the end of its last hour while open."""

    @classmethod
    def of(cls, alert: AlertFigures, kind: str) -> ScoredAlert:
        return cls.spanning(
            alert.device_id, kind, alert.hour_start, alert.last_hour_start, alert.resolved_hour
        )

    @classmethod
    def spanning(
        cls,
        device_id: str,
        kind: str,
        hour_start: datetime,
        last_hour_start: datetime,
        resolved_hour: datetime | None,
    ) -> ScoredAlert:
        """An alert from the hour it opened until the hour it resolved (or its last hour's
        end while open)."""
        return cls(device_id, kind, hour_start, resolved_hour or last_hour_start + HOUR)


@dataclass(frozen=True, slots=True)
class KindScore:
    kind: str
    alerts: int
    """Alerts of this kind (precision's denominator)."""
    true_alerts: int
    injected: int
    """Labels whose expected alert kind is this one (recall's denominator)."""
    detected: int

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.injected if self.injected else None

    def line(self) -> str:
        def pct(v: float | None) -> str:
            return "   -" if v is None else f"{v:4.0%}"

        return (
            f"{self.kind:<12} precision {pct(self.precision)} ({self.true_alerts}/{self.alerts})"
            f"  recall {pct(self.recall)} ({self.detected}/{self.injected})"
        )


def matches(alert: ScoredAlert, label: AnomalyLabel) -> bool:
    return (
        alert.device_id == label.device_id
        and alert.opened < label.end + SLACK
        and label.start - SLACK < alert.until
    )


def score(alerts: Iterable[ScoredAlert], labels: Sequence[AnomalyLabel]) -> dict[str, KindScore]:
    """Precision and recall per alert kind (see the module doc), for every kind that has
    alerts or is expected by some label."""
    by_kind: dict[str, list[ScoredAlert]] = {}
    for alert in alerts:
        by_kind.setdefault(alert.kind, []).append(alert)
    kinds = sorted({*by_kind, *(EXPECTED[label.anomaly] for label in labels)})
    result = {}
    for kind in kinds:
        mine = by_kind.get(kind, [])
        expected = [label for label in labels if EXPECTED[label.anomaly] == kind]
        result[kind] = KindScore(
            kind=kind,
            alerts=len(mine),
            true_alerts=sum(1 for a in mine if any(matches(a, label) for label in labels)),
            injected=len(expected),
            detected=sum(1 for label in expected if any(matches(a, label) for a in mine)),
        )
    return result
