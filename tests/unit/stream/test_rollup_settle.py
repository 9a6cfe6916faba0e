"""When the worker asks TimescaleDB to settle its rollups: readings before the open bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stream.worker.rollup_settle import needs_settle, open_bucket_start

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 23, 7, 30, tzinfo=UTC)


def test_the_open_bucket_starts_on_the_quarter_hour() -> None:
    assert open_bucket_start(NOW) == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)
    assert open_bucket_start(NOW.replace(minute=0, second=0)) == NOW.replace(minute=0, second=0)
    # The grid is UTC's whatever the zone the instant is written in (Kathmandu: +05:45).
    kathmandu = NOW.astimezone(ZoneInfo("Asia/Kathmandu"))
    assert open_bucket_start(kathmandu) == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        ([], False),
        ([timedelta(0)], False),  # now: in the open bucket, served live
        ([-timedelta(minutes=7, seconds=30)], False),  # the open bucket's first instant
        ([-timedelta(minutes=7, seconds=31)], True),  # the closed bucket before it
        ([timedelta(0), -timedelta(days=400)], True),  # a backfill in a live batch
    ],
)
def test_only_readings_before_the_open_bucket_ask_for_a_settle(
    offsets: list[timedelta], expected: bool
) -> None:
    assert needs_settle((NOW + offset for offset in offsets), NOW) is expected
