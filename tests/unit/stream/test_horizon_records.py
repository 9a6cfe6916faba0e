from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import numpy as np
import pytest

from stream.core.horizon_records import Issue, targets, trajectory_records
from stream.core.localtime import local_hour

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 30, tzinfo=UTC)
HOURLY = [(1.0 + k, 2.0 + k, 3.0 + k) for k in range(24)]
DAILY = [(24.0, 48.0, 72.0)] * 7
BERLIN = "Europe/Berlin"


def test_local_midnight_issue_gives_24_hours_and_7_days_scaled_by_their_length() -> None:
    first = local_hour(datetime(2026, 3, 25, 23, tzinfo=UTC), BERLIN)  # 2026-03-26 00:00 local
    trajectory, week = trajectory_records(
        [Issue("d", BERLIN, first)], [HOURLY], [DAILY], model_id="m", now=NOW
    )
    assert (trajectory.horizon, week.horizon) == ("24h", "7d")
    assert trajectory.issue_time == week.issue_time == first.start
    hours, days = targets(trajectory), targets(week)
    assert [r.step for r in hours] == list(range(1, 25))
    assert hours[0].target_start == first.start
    assert [r.local_hour for r in hours] == list(range(24))
    assert hours[5].p50_kwh == 7.0
    assert [r.local_date for r in days] == [date(2026, 3, 26) + timedelta(days=k) for k in range(7)]
    # 2026-03-29 has 23 hours: its total is the 24-hour block's times 23/24.
    assert [r.p50_kwh for r in days] == [48.0, 48.0, 48.0, 46.0, 48.0, 48.0, 48.0]
    assert days[3].target_end - days[3].target_start == timedelta(hours=23)
    assert all(r.local_hour is None for r in days)
    assert all(r.p10_kwh <= r.p50_kwh <= r.p90_kwh for r in [*hours, *days])


def test_other_hours_give_the_trajectory_only_across_the_autumn_change() -> None:
    first = local_hour(datetime(2026, 10, 24, 22, 30, tzinfo=UTC), BERLIN)  # 00:30 local: hour 0
    assert first.start == datetime(2026, 10, 24, 22, tzinfo=UTC)  # it is local midnight
    later = local_hour(datetime(2026, 10, 24, 23, 30, tzinfo=UTC), BERLIN)  # 01:00 local
    (row,) = trajectory_records(
        [Issue("d", BERLIN, later)], [HOURLY], [DAILY], model_id="m", now=NOW
    )
    rows = targets(row)
    assert len(rows) == 24 and row.horizon == "24h"
    assert [r.local_hour for r in rows][:4] == [1, 2, 2, 3]  # 02:00 twice
    assert rows[-1].target_end - rows[0].target_start == timedelta(hours=24)
    assert all(a.target_end == b.target_start for a, b in pairwise(rows))


def test_a_batch_gives_each_device_its_own_values_and_days_only_at_its_midnight() -> None:
    at = datetime(2026, 6, 1, 22, tzinfo=UTC)  # Berlin midnight; 22:00 in UTC; 03:45 Kathmandu
    zones = [BERLIN, "UTC", "Asia/Kathmandu", BERLIN]
    issues = [Issue(f"d{i}", tz, local_hour(at, tz)) for i, tz in enumerate(zones)]
    hourly = np.arange(4 * 24 * 3, dtype=np.float64).reshape(4, 24, 3)
    daily = np.arange(4 * 7 * 3, dtype=np.float64).reshape(4, 7, 3) + 1000
    rows = trajectory_records(issues, hourly, daily, model_id="m", now=NOW)
    assert [(r.device_id, r.horizon) for r in rows] == [
        ("d0", "24h"), ("d1", "24h"), ("d2", "24h"), ("d3", "24h"), ("d0", "7d"), ("d3", "7d"),
    ]  # fmt: skip
    for row, values in zip(rows[:4], hourly, strict=True):
        assert (row.p10_kwh, row.p50_kwh, row.p90_kwh) == tuple(values.T.tolist())
    assert rows[5].p50_kwh == daily[3, :, 1].tolist()  # June: 24-hour days, unscaled
    assert rows[2].issue_time == datetime(2026, 6, 1, 21, 15, tzinfo=UTC)  # 03:00 Kathmandu
    with pytest.raises(ValueError, match="devices, steps, 3"):
        trajectory_records(issues[:2], hourly, None, model_id="m", now=NOW)
