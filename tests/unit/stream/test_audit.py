"""The delivery audit's expectations and comparison, without I/O."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import generate_latest

from schema.journal import JournalRange, compact
from schema.wire import Energy, Power, Reading
from stream.audit.compare import AuditRules, StoredHour, StoredReading, audit, seq_ranges
from stream.audit.hours import closed_hours, expected_hours, hour_of, partition_of
from stream.audit.metrics import AuditMetrics
from stream.core.windowing import DeviceWindows

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # Berlin's spring DST change follows
LATENESS = timedelta(minutes=5)
SILENT = timedelta(hours=3)


def utc(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_partitions_are_kafkas_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for i in range(200):
        device = f"dev-{i:05d}"
        assert partition_of(device, 6) == partitioner(device.encode(), list(range(6)), [])


@pytest.mark.parametrize(
    ("tz", "at", "start", "end"),
    [
        ("Asia/Kolkata", utc(0.6), utc(0.5), utc(1.5)),
        ("Asia/Kathmandu", utc(0.2), utc(-0.75), utc(0.25)),
        # 02:00 local does not exist on 2026-03-29: 01:00 CET then 03:00 CEST.
        ("Europe/Berlin", datetime(2026, 3, 29, 1, 10, tzinfo=UTC), utc(5), utc(6)),
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 14, 50, tzinfo=UTC), None, None),
    ],
)
def test_local_hours(tz: str, at: datetime, start: datetime | None, end: datetime | None) -> None:
    hour = hour_of(at, tz)
    assert hour.start <= at < hour.end
    if start is not None:
        assert (hour.start, hour.end) == (start, end)
    local = hour.start.astimezone(ZoneInfo(tz))
    assert local.minute == 0  # every local hour starts on the hour, local time


def minutes(first: int, last: int, step: int = 15) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in range(first, last, step)]


def test_hours_close_up_to_the_watermark_and_silence_stops_empty_hours() -> None:
    # Speaks for 2 h, silent for 5 h, speaks for 1 h; watermark at 9 h.
    ts = minutes(0, 120) + minutes(7 * 60, 8 * 60)
    closed = closed_hours(ts, "UTC", utc(9), SILENT)
    starts = [h.start for h in closed]
    # 0, 1 spoken; 2, 3, 4 empty (less than 3 h after the last reading at 1:45); 7 spoken;
    # 8 empty again (ends at the watermark).
    assert starts == [utc(0), utc(1), utc(2), utc(3), utc(4), utc(7), utc(8)]
    assert closed_hours(ts, "UTC", utc(7.99), SILENT)[-1].start == utc(4)


def worker_closed(readings: Sequence[Reading], tz: str) -> list[datetime]:
    """What the stream worker's own windows close, fed in order, closing at every quarter."""
    windows = DeviceWindows(device_id="d", tz=tz, partition=0)
    starts = []
    highest = None
    for offset, reading in enumerate(readings):
        windows.apply(reading, offset)
        highest = reading.ts_utc if highest is None else max(highest, reading.ts_utc)
        starts += [c.window.start for c in windows.close_due(highest - LATENESS, SILENT)]
    return starts


@pytest.mark.parametrize("tz", ["Europe/Berlin", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC"])
@pytest.mark.parametrize("seed", range(5))
def test_expectations_agree_with_the_worker_windows(tz: str, seed: int) -> None:
    rng = random.Random(seed)
    at, readings = datetime(2026, 3, 27, tzinfo=UTC), []
    if tz == "Australia/Lord_Howe":
        at = datetime(2026, 4, 3, 10, tzinfo=UTC)
    for seq in range(400):
        gap = rng.choice([15] * 20 + [60 * rng.randint(1, 6)])  # now and then a silence
        at += timedelta(minutes=gap)
        readings.append(
            Reading(
                device_id="d",
                seq=seq,
                ts=at.astimezone(ZoneInfo(tz)),
                tz=tz,
                interval_s=900,
                energy=Energy(value=0.1),
                power=Power(value=0.4),
            )
        )
    expected = closed_hours([r.ts_utc for r in readings], tz, at - LATENESS, SILENT)
    assert [h.start for h in expected] == worker_closed(readings, tz)


def journal(device: str, tz: str, seqs: range, step_min: int = 15) -> list[JournalRange]:
    acked = [(s, T0 + timedelta(minutes=step_min * s)) for s in seqs]
    return compact(device, tz, step_min * 60, acked)


def stored(ranges: Sequence[JournalRange], rows: int = 1) -> list[StoredReading]:
    return [
        StoredReading(r.device_id, seq, ts, r.tz, rows) for r in ranges for seq, ts in r.readings()
    ]


def rows_for(expected: dict[str, frozenset[datetime]], copies: int = 1) -> list[StoredHour]:
    return [StoredHour(d, h, copies) for d, hours in expected.items() for h in hours]


RULES = AuditRules(lateness=LATENESS, max_silent=SILENT, history_hours=24, partitions=6)


def complete_store(published: list[JournalRange]) -> dict[str, list[StoredHour]]:
    seen: dict[str, tuple[str, list[datetime]]] = {}
    for r in published:
        seen.setdefault(r.device_id, (r.tz, []))[1].extend(ts for _, ts in r.readings())
    hours = expected_hours(
        seen, lateness=LATENESS, max_silent=SILENT, history_hours=24, partitions=6
    )
    hourly = {d: h.hourly for d, h in hours.items()}
    return {
        "hourly": rows_for(hourly),
        "health": rows_for(hourly),
        "forecasts": rows_for({d: h.forecasts for d, h in hours.items()}),
    }


FLEET = [
    *journal("dev-00000", "Europe/Berlin", range(200)),
    *journal("dev-00001", "Asia/Kolkata", range(200)),
    *journal("dev-00002", "America/St_Johns", range(200)),
]


def test_a_complete_store_passes() -> None:
    report = audit(FLEET, stored(FLEET), complete_store(FLEET), RULES)
    assert report.ok, report.lines()
    assert report.readings.expected == report.readings.stored == 600
    hourly = report.hours["hourly"]
    # 200 quarter hours = 50 h; the last hour(s) are not closed yet.
    assert 45 <= hourly.expected <= 50 * 3
    # Forecasts begin at the 24th closed hour of each device.
    assert report.hours["forecasts"].expected == hourly.expected - 3 * 23


def test_missing_duplicated_and_extra_readings_are_counted_with_examples() -> None:
    rows = stored(FLEET)
    rows = [r for r in rows if not (r.device_id == "dev-00001" and 10 <= r.seq < 15)]
    rows[0] = StoredReading(rows[0].device_id, rows[0].seq, rows[0].ts, rows[0].tz, 2)
    rows.append(StoredReading("dev-00002", 500, utc(200), "America/St_Johns", 1))
    report = audit(FLEET, rows, complete_store(FLEET), RULES)
    assert (report.readings.missing, report.readings.duplicated) == (5, 1)
    assert report.readings.extra == 1
    assert report.readings.examples["missing"] == ["dev-00001: 10-14"]
    assert report.readings.examples["duplicated"] == ["dev-00000: 0"]
    assert not report.ok


def test_extra_readings_alone_do_not_fail_but_move_the_expected_hours() -> None:
    published = [*journal("dev-00000", "UTC", range(100))]
    unjournaled = journal("dev-00000", "UTC", range(100, 120))  # acked as the simulator died
    report = audit(
        published,
        stored([*published, *unjournaled]),
        complete_store([*published, *unjournaled]),
        RULES,
    )
    assert report.readings.extra == 20
    assert report.ok, report.lines()


def test_hour_rows_missing_duplicated_or_extra_fail() -> None:
    rows = complete_store(FLEET)
    hourly = sorted(rows["hourly"], key=lambda r: (r.device_id, r.hour_start))
    gone, doubled = hourly[3], hourly[4]
    rows["hourly"] = [
        *(r for r in hourly if r not in (gone, doubled)),
        StoredHour(doubled.device_id, doubled.hour_start, 2),
        StoredHour("dev-00000", utc(500), 1),
    ]
    rows["forecasts"] = rows["forecasts"][1:]
    report = audit(FLEET, stored(FLEET), rows, RULES)
    h = report.hours["hourly"]
    assert (h.missing, h.duplicated, h.extra) == (1, 1, 1)
    assert report.hours["forecasts"].missing == 1
    assert report.hours["health"].missing == 0
    assert not report.ok
    assert "audit: FAILED" in report.lines()


def test_metrics_expose_the_findings() -> None:
    rows = [r for r in stored(FLEET) if r.seq != 7]
    report = audit(FLEET, rows, complete_store(FLEET), RULES)
    metrics = AuditMetrics()
    metrics.record(report)
    text = generate_latest(metrics.registry).decode()
    assert 'wattstream_audit_readings{outcome="missing"} 3.0' in text
    assert 'wattstream_audit_readings{outcome="stored"} 597.0' in text
    expected = report.hours["hourly"].expected
    assert f'wattstream_audit_hours{{outcome="expected",table="hourly"}} {expected}.0' in text
    assert "wattstream_audit_ok 0.0" in text
    assert "wattstream_audit_failed_runs_total 1.0" in text


def test_seq_ranges() -> None:
    assert seq_ranges([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8"
    assert seq_ranges(range(0, 20, 2), limit=2) == "0,2,..."
