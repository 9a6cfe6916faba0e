"""Properties of the windowing core: local hours, accumulators, closing and the watermark.

Zones with odd offsets and odd DST changes (Kolkata +05:30, Kathmandu +05:45, Lord Howe's
30-minute change, Berlin, St John's -03:30/-02:30) around their transitions. Energies are
multiples of 1/64 kWh so that float sums are exact and order can be compared with ``==``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.wire import Energy, Power, Reading
from stream.core.localtime import (
    QUARTER,
    local_hour,
    next_local_hour,
    previous_local_hour,
)
from stream.core.watermark import PartitionWatermarks
from stream.core.windowing import Applied, ClosedHour, DeviceWindows, HourWindow

pytestmark = pytest.mark.unit

ZONES = [
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Europe/Berlin",
    "America/St_Johns",
    "UTC",
]
# DST changes of 2026 (UTC) of the zones above, so the generated instants crowd around them.
TRANSITIONS = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),  # Berlin spring
    datetime(2026, 10, 25, 1, tzinfo=UTC),  # Berlin autumn
    datetime(2026, 4, 4, 15, tzinfo=UTC),  # Lord Howe autumn (02:00 +11 -> 01:30 +10:30)
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),  # Lord Howe spring (02:00 +10:30 -> 02:30 +11)
    datetime(2026, 3, 8, 5, 30, tzinfo=UTC),  # St John's spring
    datetime(2026, 11, 1, 4, 30, tzinfo=UTC),  # St John's autumn
]
LATENESS = timedelta(minutes=5)
SILENT = timedelta(hours=3)

zones = st.sampled_from(ZONES)
near_transitions = st.builds(
    lambda base, seconds: base + timedelta(seconds=seconds),
    st.sampled_from(TRANSITIONS),
    st.integers(min_value=-3 * 86_400, max_value=3 * 86_400),
)
anywhere = st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - bounds of st.datetimes are naive by API
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
instants = near_transitions | anywhere


# ------------------------------------------------------------------------------ local hours
@given(instants, zones)
def test_the_local_hour_contains_its_instant_and_is_one_local_hour(at: datetime, tz: str) -> None:
    hour = local_hour(at, tz)
    zone = ZoneInfo(tz)
    assert hour.start <= at < hour.end
    assert timedelta(0) < hour.duration <= timedelta(hours=1)
    assert hour.duration % QUARTER == timedelta(0)
    assert hour.start.timestamp() % 900 == 0
    local = hour.start.astimezone(zone)
    assert (local.date(), local.hour, local.utcoffset()) == (
        hour.local_date,
        hour.local_hour,
        hour.utc_offset,
    )
    last = (hour.end - timedelta(microseconds=1)).astimezone(zone)
    assert (last.date(), last.hour, last.utcoffset()) == (
        hour.local_date,
        hour.local_hour,
        hour.utc_offset,
    )
    # Maximal: the instants just outside belong to other local hours.
    assert local_hour(hour.start - timedelta(microseconds=1), tz) != hour
    assert local_hour(hour.end, tz) != hour
    assert local_hour(hour.start, tz) == hour == local_hour(hour.end - QUARTER, tz)


@given(near_transitions, zones, st.integers(min_value=1, max_value=60))
def test_local_hours_partition_time_exactly(at: datetime, tz: str, steps: int) -> None:
    """Consecutive hours meet end to start, without gap or overlap, and walk back the same."""
    first = hour = local_hour(at, tz)
    for _ in range(steps):
        following = next_local_hour(hour, tz)
        assert following.start == hour.end
        assert previous_local_hour(following, tz) == hour
        hour = following
    total = hour.end - first.start
    assert total == sum((h.duration for h in _walk(first, tz, steps + 1)), start=timedelta(0))


def _walk(hour: object, tz: str, n: int) -> list[object]:
    out = []
    current = hour
    for _ in range(n):
        out.append(current)
        current = next_local_hour(current, tz)  # type: ignore[arg-type]
    return out


@given(near_transitions, zones)
def test_every_quarter_of_a_local_day_is_in_exactly_one_of_its_hours(at: datetime, tz: str) -> None:
    zone = ZoneInfo(tz)
    day = at.astimezone(zone).date()
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    hour = local_hour(start, tz)
    hours = []
    while hour.local_date == day:
        hours.append(hour)
        hour = next_local_hour(hour, tz)
    quarter = hours[0].start
    while quarter < hours[-1].end:
        assert sum(h.start <= quarter < h.end for h in hours) == 1
        quarter += QUARTER
    span = hours[-1].end - hours[0].start
    assert timedelta(hours=22) <= span <= timedelta(hours=25)


# -------------------------------------------------------------------------------- windowing
def reading(seq: int, at: datetime, tz: str, sixty_fourths: int, interval_s: int) -> Reading:
    kwh = sixty_fourths / 64
    return Reading(
        device_id="d1",
        seq=seq,
        ts=at.astimezone(ZoneInfo(tz)),
        tz=tz,
        interval_s=interval_s,
        energy=Energy(value=kwh),
        power=Power(value=kwh * 4),
    )


@st.composite
def device_readings(draw: st.DrawFn, max_size: int = 40) -> tuple[str, list[Reading]]:
    """Readings of one device over a few hours around a transition, distinct seqs."""
    tz = draw(zones)
    base = draw(near_transitions)
    interval = draw(st.sampled_from([60, 300, 900]))
    seqs = draw(
        st.lists(st.integers(min_value=0, max_value=6 * 3600 // 60), unique=True, max_size=max_size)
    )
    items = [
        reading(seq, base + timedelta(seconds=seq * 60), tz, draw(st.integers(-64, 640)), interval)
        for seq in seqs
    ]
    return tz, items


def final_windows(dev: DeviceWindows) -> dict[datetime, HourWindow]:
    return {w.start: w for w in dev.closed}


def close_everything(dev: DeviceWindows) -> list[ClosedHour]:
    return dev.close_due(datetime(2200, 1, 1, tzinfo=UTC), SILENT)


@given(device_readings(), st.randoms(use_true_random=False))
def test_accumulators_do_not_depend_on_arrival_order(
    data: tuple[str, list[Reading]], random: object
) -> None:
    tz, items = data
    shuffled = list(items)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = (
        DeviceWindows(device_id="d1", tz=tz, partition=0),
        DeviceWindows(device_id="d1", tz=tz, partition=0),
    )
    for offset, r in enumerate(items):
        assert a.apply(r, offset).outcome is Applied.ACCEPTED
    for offset, r in enumerate(shuffled):
        assert b.apply(r, offset).outcome is Applied.ACCEPTED
    assert a.open == b.open
    assert a.last_event_ts == b.last_event_ts
    assert [c.window for c in close_everything(a)] == [c.window for c in close_everything(b)]


@given(device_readings(), st.data())
def test_duplicates_change_nothing_but_the_duplicate_count(
    data: tuple[str, list[Reading]], draw: st.DataObject
) -> None:
    tz, items = data
    once = DeviceWindows(device_id="d1", tz=tz, partition=0)
    twice = DeviceWindows(device_id="d1", tz=tz, partition=0)
    for offset, r in enumerate(items):
        once.apply(r, offset)
    repeats = draw.draw(st.lists(st.sampled_from(items), max_size=20)) if items else []
    offset = 0
    for r in items:
        twice.apply(r, offset)
        offset += 1
    for r in repeats:
        assert twice.apply(r, offset).outcome is Applied.DUPLICATE
        offset += 1
    for key, window in once.open.items():
        other = twice.open[key]
        assert other.duplicate_count == sum(
            local_hour(r.ts_utc, tz).start.isoformat() == key for r in repeats
        )
        assert other.model_copy(update={"duplicate_count": 0}) == window
    assert once.open.keys() == twice.open.keys()


@given(device_readings())
def test_a_replayed_offset_changes_nothing(data: tuple[str, list[Reading]]) -> None:
    tz, items = data
    dev = DeviceWindows(device_id="d1", tz=tz, partition=0)
    for offset, r in enumerate(items):
        dev.apply(r, offset)
    before = dev.model_dump()
    for offset, r in enumerate(items):
        assert dev.apply(r, offset).outcome is Applied.REPLAYED
    assert dev.model_dump() == before


@given(device_readings())
def test_counts_and_sums_are_conserved_and_each_reading_is_in_its_hour(
    data: tuple[str, list[Reading]],
) -> None:
    tz, items = data
    dev = DeviceWindows(device_id="d1", tz=tz, partition=0)
    for offset, r in enumerate(items):
        dev.apply(r, offset)
    windows = final_windows(dev) | {w.start: w for w in (c.window for c in close_everything(dev))}
    assert sum(w.count for w in windows.values()) == len(items)
    assert sum(w.energy_kwh for w in windows.values()) == sum(r.energy.value for r in items)
    for r in items:
        hour = local_hour(r.ts_utc, tz)
        w = windows[hour.start]
        assert w.start <= r.ts_utc < w.end
        assert w.first_ts is not None and w.first_ts <= r.ts_utc
        assert w.last_ts is not None and r.ts_utc <= w.last_ts
        assert w.power_min_kw is not None and w.power_max_kw is not None
        assert w.power_min_kw <= r.power.value <= w.power_max_kw


@given(device_readings(max_size=60), st.integers(min_value=0, max_value=90))
def test_live_closing_emits_each_hour_once_and_conserves_readings(
    data: tuple[str, list[Reading]], jitter_min: int
) -> None:
    """Readings arrive roughly in time order (each held back up to ``jitter_min``), the
    watermark closes hours as it goes; late readings restate their hour. In the end every
    reading is counted exactly once in the newest revision of its hour."""
    tz, items = data
    arrival = sorted(
        items, key=lambda r: r.ts_utc + timedelta(minutes=(r.seq * 7) % (jitter_min + 1))
    )
    dev = DeviceWindows(device_id="d1", tz=tz, partition=0)
    marks = PartitionWatermarks(LATENESS)
    latest: dict[datetime, HourWindow] = {}
    closed_starts: list[datetime] = []
    for offset, r in enumerate(arrival):
        result = dev.apply(r, offset)
        assert result.outcome in {Applied.ACCEPTED, Applied.LATE}
        if result.restated is not None:
            w = result.restated.window
            assert w.start in latest
            assert w.revision == latest[w.start].revision + 1
            latest[w.start] = w
        marks.observe(0, r.ts_utc)
        mark = marks.due(0)
        if mark is not None:
            for c in dev.close_due(mark, SILENT):
                assert c.window.end <= mark
                closed_starts.append(c.window.start)
                latest[c.window.start] = c.window
    for c in close_everything(dev):
        closed_starts.append(c.window.start)
        latest[c.window.start] = c.window
    assert len(closed_starts) == len(set(closed_starts))
    assert closed_starts == sorted(closed_starts)
    assert sum(w.count for w in latest.values()) == len(items)
    assert sum(w.energy_kwh for w in latest.values()) == sum(r.energy.value for r in items)
    assert sum(w.late_count for w in latest.values()) == sum(w.revision for w in latest.values())
    for w in latest.values():
        hour = local_hour(w.start, tz)
        assert (hour.start, hour.end) == (w.start, w.end)


@given(st.lists(st.tuples(st.integers(0, 3), instants), max_size=50))
def test_the_watermark_never_goes_back(events: list[tuple[int, datetime]]) -> None:
    marks = PartitionWatermarks(LATENESS)
    seen: dict[int, datetime] = {}
    for partition, at in events:
        before = marks.watermark(partition)
        marks.observe(partition, at)
        after = marks.watermark(partition)
        assert after is not None
        assert before is None or after >= before
        seen[partition] = max(seen.get(partition, at), at)
        assert after == seen[partition] - LATENESS
        due = marks.due(partition)
        assert due is None or due == after


@given(st.lists(instants, min_size=1, max_size=30))
def test_due_fires_once_per_quarter_boundary_crossed(times: list[datetime]) -> None:
    marks = PartitionWatermarks(timedelta(0))
    fired = []
    for at in times:
        marks.observe(0, at)
        if (mark := marks.due(0)) is not None:
            fired.append(mark)
    quarters = [m.timestamp() // 900 for m in fired]
    assert quarters == sorted(set(quarters))
    assert marks.due(0) is None
    assert fired[-1] == max(times) or max(times).timestamp() // 900 == quarters[-1]
