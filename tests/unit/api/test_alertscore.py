"""Scoring the alerts against the injected anomalies: pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.alertscore import ScoredAlert, score
from schema.device_messages import AnomalyKind, AnomalyLabel, LabelSource

pytestmark = pytest.mark.unit

T0 = datetime(2026, 6, 1, tzinfo=UTC)
H = timedelta(hours=1)


def label(device: str, kind: AnomalyKind, start: datetime, hours: int = 1) -> AnomalyLabel:
    return AnomalyLabel(
        label_id=f"{device}:{kind}",
        device_id=device,
        anomaly=kind,
        start=start,
        end=start + hours * H,
        first_seq=0,
        nominal_kw=1.0,
        source=LabelSource.SCHEDULE,
        command_id="c",
    )


def test_precision_and_recall_per_kind() -> None:
    labels = [
        label("d1", AnomalyKind.SPIKE, T0 + 30 * H),
        label("d2", AnomalyKind.DROPOUT, T0 + 30 * H, 2),
    ]
    found = [
        ScoredAlert("d1", "residual", T0 + 30 * H, T0 + 31 * H),  # the spike
        ScoredAlert("d1", "level_shift", T0 + 32 * H, T0 + 33 * H),  # its aftermath: true
        ScoredAlert("d3", "residual", T0 + 30 * H, T0 + 31 * H),  # another device: false
        ScoredAlert("d1", "residual", T0 + 40 * H, T0 + 41 * H),  # much later: false
    ]
    scores = score(found, labels)
    assert scores["residual"].precision == pytest.approx(1 / 3)
    assert scores["residual"].recall == 1.0
    assert scores["level_shift"].precision == 1.0 and scores["level_shift"].recall is None
    assert scores["silent"].recall == 0.0 and scores["silent"].precision is None
