from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from stream.core.horizon_records import horizon_records
from stream.core.localtime import local_hour

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 30, tzinfo=UTC)
HOURLY = [(1.0 + k, 2.0 + k, 3.0 + k) for k in range(24)]
DAILY = [(24.0, 48.0, 72.0)] * 7


def test_local_midnight_issue_gives_24_hours_and_7_days_scaled_by_their_length() -> None:
    tz = "Europe/Berlin"
    first = local_hour(datetime(2026, 3, 25, 23, tzinfo=UTC), tz)  # 2026-03-26 00:00 local
    rows = horizon_records(
        device_id="d", tz=tz, first=first, hourly=HOURLY, daily=DAILY, model_id="m", now=NOW
    )
    hours = [r for r in rows if r.horizon == "24h"]
    days = [r for r in rows if r.horizon == "7d"]
    assert [r.step for r in hours] == list(range(1, 25))
    assert hours[0].target_start == hours[0].issue_time == first.start
    assert [r.local_hour for r in hours] == list(range(24))
    assert hours[5].p50_kwh == 7.0
    assert [r.local_date for r in days] == [date(2026, 3, 26) + timedelta(days=k) for k in range(7)]
    # 2026-03-29 has 23 hours: its total is the 24-hour block's times 23/24.
    assert [r.p50_kwh for r in days] == [48.0, 48.0, 48.0, 46.0, 48.0, 48.0, 48.0]
    assert days[3].target_end - days[3].target_start == timedelta(hours=23)
    assert all(r.p10_kwh <= r.p50_kwh <= r.p90_kwh for r in rows)


def test_other_hours_give_the_trajectory_only_across_the_autumn_change() -> None:
    tz = "Europe/Berlin"
    first = local_hour(datetime(2026, 10, 24, 22, 30, tzinfo=UTC), tz)  # 00:30 local: hour 0
    assert first.start == datetime(2026, 10, 24, 22, tzinfo=UTC)  # it is local midnight
    later = local_hour(datetime(2026, 10, 24, 23, 30, tzinfo=UTC), tz)  # 01:00 local
    rows = horizon_records(
        device_id="d", tz=tz, first=later, hourly=HOURLY, daily=DAILY, model_id="m", now=NOW
    )
    assert len(rows) == 24 and {r.horizon for r in rows} == {"24h"}
    assert [r.local_hour for r in rows][:4] == [1, 2, 2, 3]  # 02:00 twice
    assert rows[-1].target_end - rows[0].target_start == timedelta(hours=24)
