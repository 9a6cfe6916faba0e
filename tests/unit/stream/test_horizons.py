from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from stream.core.horizons import (
    daily_targets,
    day_fraction,
    day_peak,
    interval_coverage,
    is_local_midnight,
    local_day,
    local_day_hours,
    next_local_date,
    ordered_quantiles,
    trajectory_targets,
)
from stream.core.localtime import local_hour

pytestmark = pytest.mark.unit

HOUR = timedelta(hours=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ------------------------------------------------------------------------- local days


@pytest.mark.parametrize(
    ("day", "tz", "windows", "length"),
    [
        (date(2026, 3, 29), "Europe/Berlin", 23, timedelta(hours=23)),
        (date(2026, 10, 25), "Europe/Berlin", 25, timedelta(hours=25)),
        (date(2026, 6, 1), "Europe/Berlin", 24, timedelta(hours=24)),
        (date(2026, 3, 29), "Asia/Kathmandu", 24, timedelta(hours=24)),
        # Lord Howe moves its clock by 30 minutes: 02:00 -> 02:30 in October, 02:00 -> 01:30
        # in April (local hour 1 is then two windows, 60 and 30 minutes).
        (date(2026, 10, 4), "Australia/Lord_Howe", 24, timedelta(hours=23, minutes=30)),
        (date(2026, 4, 5), "Australia/Lord_Howe", 25, timedelta(hours=24, minutes=30)),
    ],
)
def test_local_day_windows_and_length(day: date, tz: str, windows: int, length: timedelta) -> None:
    hours = local_day_hours(day, tz)
    assert len(hours) == windows
    assert all(h.local_date == day for h in hours)
    assert all(a.end == b.start for a, b in itertools.pairwise(hours))  # contiguous
    assert local_day(day, tz).duration == length
    assert day_fraction(local_day(day, tz)) == length / timedelta(hours=24)


def test_kathmandu_day_starts_at_quarter_past_utc() -> None:
    day = local_day(date(2026, 6, 1), "Asia/Kathmandu")  # +05:45
    assert (day.start, day.end) == (utc(2026, 5, 31, 18, 15), utc(2026, 6, 1, 18, 15))


# ------------------------------------------------------------------- hourly trajectory


def test_trajectory_is_24_contiguous_hours_after_the_closed_one() -> None:
    closed = local_hour(utc(2026, 6, 1, 9, 30), "Europe/Berlin")  # 11:00-12:00 local
    targets = trajectory_targets(closed, "Europe/Berlin")
    assert len(targets) == 24
    assert targets[0].start == closed.end == utc(2026, 6, 1, 10)
    assert all(a.end == b.start for a, b in itertools.pairwise(targets))
    assert [t.local_hour for t in targets] == [*range(12, 24), *range(12)]


def test_berlin_spring_trajectory_skips_2am_and_holds_all_23_hours_of_the_day() -> None:
    tz = "Europe/Berlin"
    closed = local_hour(utc(2026, 3, 28, 22, 30), tz)  # 23:00-24:00 local, Saturday
    targets = trajectory_targets(closed, tz)
    hours = [t.local_hour for t in targets if t.local_date == date(2026, 3, 29)]
    assert hours == [0, 1, *range(3, 24)]  # 23 targets on the 23-hour day
    assert targets[-1].local_date == date(2026, 3, 30)  # the 24th is the next day's 00:00
    assert targets[-1].start - targets[0].start == 23 * HOUR


def test_berlin_autumn_trajectory_holds_2am_twice_and_misses_the_days_last_hour() -> None:
    tz = "Europe/Berlin"
    closed = local_hour(utc(2026, 10, 24, 21, 30), tz)  # 23:00-24:00 local (+02:00)
    targets = trajectory_targets(closed, tz)
    hours = [t.local_hour for t in targets]
    assert hours[:5] == [0, 1, 2, 2, 3]
    assert [t.utc_offset for t in targets[2:4]] == [2 * HOUR, HOUR]
    assert all(t.local_date == date(2026, 10, 25) for t in targets)
    assert len(local_day_hours(date(2026, 10, 25), tz)) == 25  # one more than the trajectory


def test_kathmandu_trajectory_hours_run_quarter_past_to_quarter_past_utc() -> None:
    tz = "Asia/Kathmandu"
    closed = local_hour(utc(2026, 6, 1, 4, 0), tz)  # 09:00-10:00 local = 03:15-04:15 UTC
    targets = trajectory_targets(closed, tz)
    assert all(t.start.minute == 15 and t.duration == HOUR for t in targets)
    assert targets[0].local_hour == 10


def test_lord_howe_trajectory_across_the_30_minute_changes() -> None:
    tz = "Australia/Lord_Howe"
    spring = trajectory_targets(local_hour(utc(2026, 10, 3, 13, 0), tz), tz)  # 23:30 local
    durations = {t.local_hour: t.duration for t in spring if t.local_date == date(2026, 10, 4)}
    assert durations[2] == timedelta(minutes=30)
    assert sum((t.duration for t in spring), timedelta()) == timedelta(hours=23, minutes=30)
    autumn = trajectory_targets(local_hour(utc(2026, 4, 4, 12, 30), tz), tz)  # 23:30 local
    ones = [t for t in autumn if t.local_date == date(2026, 4, 5) and t.local_hour == 1]
    assert [t.duration for t in ones] == [HOUR, timedelta(minutes=30)]


def test_trajectory_needs_at_least_one_hour() -> None:
    with pytest.raises(ValueError, match="at least one"):
        trajectory_targets(local_hour(utc(2026, 6, 1), "UTC"), "UTC", hours=0)


# ------------------------------------------------------------------------ daily targets


def test_seven_daily_targets_from_berlin_midnight_across_spring_change() -> None:
    tz = "Europe/Berlin"
    midnight = utc(2026, 3, 25, 23)  # 2026-03-26 00:00 local
    assert is_local_midnight(midnight, tz)
    days = daily_targets(midnight, tz)
    assert [d.local_date for d in days] == [date(2026, 3, 26) + timedelta(days=k) for k in range(7)]
    assert [d.duration / HOUR for d in days] == [24, 24, 24, 23, 24, 24, 24]
    assert all(a.end == b.start for a, b in itertools.pairwise(days))


def test_daily_targets_across_autumn_change_and_in_offbeat_zones() -> None:
    assert [d.duration / HOUR for d in daily_targets(utc(2026, 10, 21, 22), "Europe/Berlin")] == [
        24, 24, 24, 25, 24, 24, 24,
    ]  # fmt: skip
    kathmandu = daily_targets(utc(2026, 5, 31, 18, 15), "Asia/Kathmandu")
    assert kathmandu[0].local_date == date(2026, 6, 1)
    assert all(d.start.minute == 15 and d.duration == 24 * HOUR for d in kathmandu)
    lord_howe = daily_targets(
        utc(2026, 10, 1, 13, 30), "Australia/Lord_Howe"
    )  # Oct 2, 00:00 +10:30
    assert [d.duration / HOUR for d in lord_howe] == [24, 24, 23.5, 24, 24, 24, 24]


def test_daily_targets_refuse_an_instant_that_is_not_local_midnight() -> None:
    assert not is_local_midnight(utc(2026, 3, 26), "Europe/Berlin")  # 01:00 local
    with pytest.raises(ValueError, match="not the start of a local day"):
        daily_targets(utc(2026, 3, 26), "Europe/Berlin")
    with pytest.raises(ValueError, match="aware"):
        daily_targets(datetime(2026, 3, 26), "Europe/Berlin")  # noqa: DTZ001 - the point


# ---------------------------------------------------------------------------- quantiles


def test_ordered_quantiles_sort_crossed_intervals() -> None:
    raw = np.array([[[1.0, 0.5, 2.0], [3.0, 2.0, 1.0]], [[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]]])
    ordered = ordered_quantiles(raw)
    assert ordered.shape == raw.shape
    assert np.all(ordered[..., 0] <= ordered[..., 1])
    assert np.all(ordered[..., 1] <= ordered[..., 2])
    assert ordered[0, 1].tolist() == [1.0, 2.0, 3.0]
    assert ordered[1, 0].tolist() == [0.1, 0.2, 0.3]  # already ordered: unchanged
    with pytest.raises(ValueError, match="3 quantiles"):
        ordered_quantiles(np.zeros((2, 2)))


def test_interval_coverage() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    low, high = np.full(5, 1.5), np.full(5, 4.0)
    assert interval_coverage(actual, low, high) == pytest.approx(0.6)  # 2, 3 and 4 (bounds in)
    with pytest.raises(ValueError, match="non-empty"):
        interval_coverage(actual, low[:2], high)


# --------------------------------------------------------------------------------- peak


def test_peak_of_the_next_local_day_over_a_25_hour_day() -> None:
    tz = "Europe/Berlin"
    closed = local_hour(utc(2026, 10, 24, 21, 30), tz)
    targets = trajectory_targets(closed, tz)
    kwh = [1.0] * 24
    kwh[3] = 5.0  # the second 02:00 (+01:00)
    kwh[10] = 5.0  # a later tie: the earlier hour wins
    peak = day_peak(targets, kwh, next_local_date(closed), tz)
    assert peak is not None
    assert (peak.hour.local_hour, peak.hour.utc_offset, peak.kwh) == (2, HOUR, 5.0)
    assert (peak.covered_hours, peak.day_hours) == (24, 25)


def test_peak_is_none_when_the_trajectory_misses_the_day() -> None:
    tz = "UTC"
    closed = local_hour(utc(2026, 6, 1, 0), tz)
    targets = trajectory_targets(closed, tz, hours=3)
    assert day_peak(targets, [1.0, 2.0, 3.0], date(2026, 6, 3), tz) is None
    with pytest.raises(ValueError, match="3 targets but 2"):
        day_peak(targets, [1.0, 2.0], date(2026, 6, 1), tz)
