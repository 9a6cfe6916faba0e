"""The worker's result sink on the real PostgreSQL: every column round-trips, one transaction,
idempotent replays, restatements only moving forward."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from schema import tables
from schema.device_messages import (
    AnomalyKind,
    AnomalyLabel,
    DeviceBirth,
    DeviceStatus,
    LabelSource,
    Location,
    Presence,
)
from schema.results import Alert, Forecast, Health, HourlyAggregate
from schema.wire import Energy, Power, Production, Reading
from stream.core.horizon_records import TrajectoryRow
from stream.worker.processor import SinkBatch
from stream.worker.sink import ResultSink

pytestmark = pytest.mark.integration

H = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def hourly(revision: int, energy: float) -> HourlyAggregate:
    return HourlyAggregate(
        device_id="d1", hour_start=H, hour_end=H + timedelta(hours=1), tz="Europe/Berlin",
        local_date=date(2026, 3, 29), local_hour=1, energy_kwh=energy, power_mean_kw=1.0,
        power_min_kw=0.5, power_max_kw=1.5, reading_count=4, expected_count=4, completeness=1.0,
        late_count=revision, duplicate_count=0, first_ts=H, last_ts=H + timedelta(minutes=45),
        revision=revision, closed_at=H + timedelta(hours=2),
    )  # fmt: skip


def batch(revision: int = 0, energy: float = 1.0) -> SinkBatch:
    return SinkBatch(
        readings=[
            Reading(device_id="d1", seq=k, ts=(H + timedelta(minutes=15 * k)).astimezone(BERLIN),
                    tz="Europe/Berlin", interval_s=900, energy=Energy(value=0.25),
                    power=Power(value=1.0))
            for k in range(4)
        ],
        births=[
            DeviceBirth(device_id="d1", kind="hvac", tz="Europe/Berlin",
                        location=Location(latitude=52.5, longitude=13.4, name="Berlin"),
                        nominal_kw=3.0, firmware="2.1", interval_s=900, ts=H)
        ],
        statuses=[(DeviceStatus(device_id="d1", status=Presence.ONLINE, ts=H), H)],
        hourly=[hourly(revision, energy)],
        forecasts=[
            Forecast(device_id="d1", hour_start=H + timedelta(hours=1), model_id="m1",
                     predicted_kwh=1.1, baseline_kwh=0.9, based_on_hour=H, issued_at=H)
        ],
        health=[
            Health(device_id="d1", hour_start=H, rmse_24h=0.1, mae_24h=0.1, mape_24h=0.1,
                   bias_24h=0.0, naive_rmse_24h=0.2, rmse_ratio=0.5, status="green",
                   completeness_24h=1.0, gaps_24h=0, late_24h=0, duplicates_24h=0,
                   presence="online", last_seen=H, computed_at=H)
        ],
        alerts=[
            Alert(alert_id="d1.residual.0", device_id="d1", hour_start=H, last_hour_start=H,
                  hours=1, severity="warning", residual_kwh=0.3, sigma=0.1, z=3.0, message="m",
                  raised_at=H, updated_at=H, resolved_hour=None, resolved_at=None)
        ],
    )  # fmt: skip


@pytest.fixture
async def sink(database: str) -> AsyncIterator[ResultSink]:
    service = ResultSink(database, group_id="g1")
    await service.start()
    yield service
    await service.stop()


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in (
                "readings",
                "devices",
                "device_status",
                "hourly",
                "forecasts",
                "health",
                "alerts",
            )
        }
    finally:
        await conn.close()


async def test_a_batch_lands_once_however_often_it_is_written(
    sink: ResultSink, database: str
) -> None:
    await sink.write(batch())
    first = await counts(database)
    assert first == {
        "readings": 4, "devices": 1, "device_status": 1, "hourly": 1, "forecasts": 1,
        "health": 1, "alerts": 1,
    }  # fmt: skip
    await sink.write(batch())
    assert await counts(database) == first
    again = batch()
    again.offsets = {("readings", 3): 42}
    await sink.write(again)
    again.offsets = {("readings", 3): 17}  # a replay never moves the stored offset back
    await sink.write(again)
    assert await sink.stored_offsets() == {("readings", 3): 42}


async def test_new_readings_with_a_copy_among_them_land_once(
    sink: ResultSink, database: str
) -> None:
    """New rows go straight into the table; a key twice in one batch (a QoS 1 copy) sends the
    whole batch the staging way, and nothing lands twice or is lost."""
    first = batch().readings
    later = [
        r.model_copy(update={"seq": r.seq + 4, "ts": r.ts + timedelta(hours=1)}) for r in first
    ]
    await sink.write(SinkBatch(readings=first))
    await sink.write(SinkBatch(readings=[later[0], later[1], later[0], later[2], later[3]]))
    assert (await counts(database))["readings"] == 8
    await sink.write(SinkBatch(readings=[*first, *later]))  # a replay of both
    assert (await counts(database))["readings"] == 8


async def test_restatements_move_forward_only(sink: ResultSink, database: str) -> None:
    await sink.write(batch(revision=1, energy=1.3))
    await sink.write(batch(revision=0, energy=1.0))  # a stale replay of the first close
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow("SELECT revision, energy_kwh FROM hourly")
        assert (row["revision"], row["energy_kwh"]) == (1, 1.3)
        # The storage layer's rollups saw the raw readings written through COPY.
        assert await conn.fetchval("SELECT sum(energy_kwh) FROM readings_15m") == pytest.approx(1.0)
    finally:
        await conn.close()


# ------------------------------------------------------------------------------- horizons
def trajectory(issue: datetime, p50: float, model_id: str = "gru-h") -> TrajectoryRow:
    steps = range(24)
    return TrajectoryRow(
        device_id="d1", issue_time=issue, horizon="24h", model_id=model_id,
        bounds=[issue + timedelta(hours=k) for k in range(25)],
        local_dates=[date(2026, 3, 29)] * 24, local_hours=[k % 24 for k in steps],
        p10_kwh=[p50 - 0.5] * 24, p50_kwh=[p50 + k for k in steps],
        p90_kwh=[p50 + k + 0.5 for k in steps], issued_at=issue,
    )  # fmt: skip


async def test_horizons_are_rewritten_idempotently(sink: ResultSink, database: str) -> None:
    first, second = H + timedelta(hours=1), H + timedelta(hours=2)
    await sink.write(SinkBatch(horizons=[trajectory(first, 1.0)]))
    await sink.write(SinkBatch(horizons=[trajectory(first, 1.0)]))  # a replay: same rows
    # The same issue recomputed (a restatement): replaced in place, never a second row.
    await sink.write(SinkBatch(horizons=[trajectory(first, 2.0)]))
    await sink.write(SinkBatch(horizons=[trajectory(second, 3.0), trajectory(second, 3.5)]))
    await sink.write(SinkBatch(horizons=[trajectory(second, 1.0, model_id="gru-other")]))
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(
            "SELECT issue_time, model_id, count(*) AS n, min(p50_kwh) AS low"
            " FROM forecast_horizons GROUP BY issue_time, model_id ORDER BY issue_time, model_id"
        )
        assert [(r["issue_time"], r["model_id"], r["n"], r["low"]) for r in rows] == [
            (first, "gru-h", 24, 2.0),
            (second, "gru-h", 24, 3.5),  # the last of a batch's duplicates wins
            (second, "gru-other", 24, 1.0),
        ]
        # The view reads each target of the stored trajectories.
        row = await conn.fetchrow(
            "SELECT * FROM forecast_horizons WHERE issue_time = $1 AND step = 3", first
        )
        assert dict(row) == {
            "device_id": "d1", "issue_time": first, "target_start": first + timedelta(hours=2),
            "target_end": first + timedelta(hours=3), "horizon": "24h", "model_id": "gru-h",
            "step": 3, "local_date": date(2026, 3, 29), "local_hour": 2, "p10_kwh": 1.5,
            "p50_kwh": 4.0, "p90_kwh": 4.5, "issued_at": first,
        }  # fmt: skip
        # Days (no local hours) and hours in one batch: the arrays differ in length.
        week = trajectory(second, 20.0)._replace(
            horizon="7d", bounds=[second + timedelta(days=k) for k in range(8)],
            local_dates=[date(2026, 3, 29) + timedelta(days=k) for k in range(7)],
            local_hours=None, p10_kwh=[19.0] * 7, p50_kwh=[20.0 + k for k in range(7)],
            p90_kwh=[30.0] * 7,
        )  # fmt: skip
        await sink.write(SinkBatch(horizons=[week, trajectory(second, 3.5)]))
        days = await conn.fetch(
            "SELECT step, target_end - target_start AS length, local_hour, p50_kwh"
            " FROM forecast_horizons WHERE horizon = '7d' ORDER BY step"
        )
        assert [tuple(r) for r in days] == [
            (k + 1, timedelta(days=1), None, 20.0 + k) for k in range(7)
        ]
        good = trajectory(first, 1.0)
        for bad in (
            good._replace(p90_kwh=[*good.p90_kwh[:-1], 0.0]),  # P10 <= P50 <= P90 is enforced
            good._replace(bounds=good.bounds[:-1]),  # a bound per target and one more
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await sink.write(SinkBatch(horizons=[bad]))
    finally:
        await conn.close()


async def test_an_alert_update_keeps_its_acknowledgement(sink: ResultSink, database: str) -> None:
    await sink.write(batch())
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = 'ana', note = 'on it'", H
        )
        held = batch()
        (alert,) = held.alerts
        held.alerts = [alert.model_copy(update={"hours": 2, "severity": "critical"})]
        await sink.write(held)  # the condition held another hour: the worker updates the alert
        row = await conn.fetchrow("SELECT hours, severity, acknowledged_by, note FROM alerts")
        assert dict(row) == {"hours": 2, "severity": "critical", "acknowledged_by": "ana",
                             "note": "on it"}  # fmt: skip
    finally:
        await conn.close()


async def test_an_alert_a_person_resolved_is_never_written_again(
    sink: ResultSink, database: str
) -> None:
    assert await sink.write(batch()) == frozenset()
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "UPDATE alerts SET resolved_hour = $1, resolved_at = $1, resolved_by = 'ana',"
            " resolution_note = 'replaced the meter'",
            H + timedelta(hours=1),
        )
        before = dict(await conn.fetchrow("SELECT * FROM alerts"))
        held = batch()
        (alert,) = held.alerts
        later = H + timedelta(hours=1)
        held.alerts = [
            alert.model_copy(update={"hours": 2, "last_hour_start": later, "updated_at": later}),
            alert.model_copy(update={"alert_id": "d2.stuck.0", "device_id": "d2"}),
        ]
        # The worker still sees the condition: its update is left out, and reported.
        assert await sink.write(held) == {alert.alert_id}
        assert dict(await conn.fetchrow("SELECT * FROM alerts WHERE device_id = 'd1'")) == before
        assert await conn.fetchval("SELECT count(*) FROM alerts WHERE device_id = 'd2'") == 1
        # Resolving by itself does not undo the person's resolution either.
        cleared = alert.model_copy(update={"resolved_hour": later, "resolved_at": later})
        assert await sink.write(SinkBatch(alerts=[cleared])) == {alert.alert_id}
        assert dict(await conn.fetchrow("SELECT * FROM alerts WHERE device_id = 'd1'")) == before
    finally:
        await conn.close()


async def test_a_label_delivered_twice_is_one_row(sink: ResultSink, database: str) -> None:
    label = AnomalyLabel(
        label_id="c1:d1", device_id="d1", anomaly=AnomalyKind.STUCK, start=H,
        end=H + timedelta(hours=1), first_seq=3, nominal_kw=2.0, source=LabelSource.SCHEDULE,
        command_id="c1",
    )  # fmt: skip
    await sink.write(SinkBatch(labels=[label, label]))  # QoS 1 redelivers; a batch may hold both
    await sink.write(SinkBatch(labels=[label]))
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT label_id, anomaly, start FROM anomaly_labels")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("c1:d1", "stuck", H)]


# ----------------------------------------------------------------------------- round trip
def distinct_batch() -> SinkBatch:
    """One row per table the sink writes, every value distinct from the others of its type and
    from the column's default, so a swapped, dropped or defaulted column shows."""
    t = H + timedelta(days=3)
    return SinkBatch(
        readings=[
            Reading(device_id="r1", seq=17, ts=(t + timedelta(seconds=7)).astimezone(BERLIN),
                    tz="Europe/Berlin", interval_s=300, energy=Energy(value=0.125),
                    power=Power(value=1.5), production=Production(value=6.25))
        ],
        births=[
            DeviceBirth(device_id="b1", kind="solar_inverter", tz="Asia/Kolkata",
                        location=Location(latitude=12.5, longitude=77.25, name="Bengaluru"),
                        nominal_kw=4.75, firmware="3.0.1", interval_s=600,
                        ts=t + timedelta(minutes=1))
        ],
        statuses=[
            (DeviceStatus(device_id="s1", status=Presence.OFFLINE, ts=t),
             t + timedelta(minutes=2))
        ],
        hourly=[
            HourlyAggregate(
                device_id="h1", hour_start=t, hour_end=t + timedelta(hours=1),
                tz="Australia/Lord_Howe", local_date=date(2026, 4, 1), local_hour=13,
                energy_kwh=2.5, power_mean_kw=2.25, power_min_kw=0.75, power_max_kw=3.5,
                production_units=18.5, reading_count=11, expected_count=12,
                completeness=11 / 12, late_count=3, duplicate_count=2,
                first_ts=t + timedelta(minutes=3), last_ts=t + timedelta(minutes=58), revision=4,
                closed_at=t + timedelta(hours=1, minutes=5),
            )
        ],
        forecasts=[
            Forecast(device_id="f1", hour_start=t + timedelta(hours=2), model_id="gbm-7",
                     predicted_kwh=1.75, baseline_kwh=1.625, based_on_hour=t + timedelta(hours=1),
                     issued_at=t + timedelta(hours=1, minutes=6))
        ],
        horizons=[
            TrajectoryRow(device_id="z1", issue_time=t + timedelta(hours=7), horizon="24h",
                          model_id="gru-h",
                          bounds=[t + timedelta(hours=8), t + timedelta(hours=8, minutes=30)],
                          local_dates=[date(2026, 4, 2)], local_hours=[2], p10_kwh=[0.25],
                          p50_kwh=[0.5], p90_kwh=[0.875],
                          issued_at=t + timedelta(hours=7, minutes=3))
        ],
        health=[
            Health(device_id="x1", hour_start=t + timedelta(hours=3), rmse_24h=0.5,
                   mae_24h=0.375, mape_24h=0.0625, bias_24h=-0.125, naive_rmse_24h=0.625,
                   rmse_ratio=0.8, status="amber", completeness_24h=0.9375, gaps_24h=1,
                   late_24h=5, duplicates_24h=6, presence="offline",
                   last_seen=t + timedelta(hours=3, minutes=4),
                   computed_at=t + timedelta(hours=4, minutes=1))
        ],
        alerts=[
            Alert(alert_id="a1.level_shift.5", alert_kind="level_shift", device_id="a1",
                  hour_start=t + timedelta(hours=5), last_hour_start=t + timedelta(hours=7),
                  hours=3, severity="critical", residual_kwh=-0.875, sigma=0.25, z=-3.5,
                  message="too low", raised_at=t + timedelta(hours=6, minutes=2),
                  updated_at=t + timedelta(hours=8, minutes=1),
                  resolved_hour=t + timedelta(hours=8), resolved_at=t + timedelta(hours=9))
        ],
        labels=[
            AnomalyLabel(label_id="cmd-9:l1", device_id="l1", anomaly=AnomalyKind.DRIFT,
                         start=(t + timedelta(minutes=20)).astimezone(BERLIN),
                         end=t + timedelta(hours=2, minutes=20), first_seq=41, magnitude=1.5,
                         nominal_kw=3.25, source=LabelSource.COMMAND, command_id="cmd-9")
        ],
        offsets={("readings", 5): 1234},
    )  # fmt: skip


def expected_rows(batch: SinkBatch) -> dict[str, dict[str, object]]:
    """What each table must hold, written out here by hand from the records (not with the
    sink's own mapping, which is what is under test); ``...`` = filled in by the database."""
    (reading,), (birth,), ((status, changed_at),) = batch.readings, batch.births, batch.statuses
    (hour,), (forecast,), (horizon,), (health,), (alert,), (label,) = (
        batch.hourly,
        batch.forecasts,
        batch.horizons,
        batch.health,
        batch.alerts,
        batch.labels,
    )
    envelope = {"schema_version", "kind"}
    return {
        "readings": {
            "device_id": reading.device_id, "ts": reading.ts, "seq": reading.seq,
            "tz": reading.tz, "interval_s": reading.interval_s,
            "energy_kwh": reading.energy.value, "power_kw": reading.power.value,
            "ingested_at": ..., "production_units": 6.25,
        },
        "devices": {
            "device_id": birth.device_id, "kind": birth.kind, "tz": birth.tz,
            "latitude": birth.location.latitude, "longitude": birth.location.longitude,
            "location_name": birth.location.name, "nominal_kw": birth.nominal_kw,
            "firmware": birth.firmware, "interval_s": birth.interval_s,
            "first_seen": birth.ts, "updated_at": birth.ts,
        },
        "device_status": {
            "device_id": status.device_id, "status": status.status.value,
            "changed_at": changed_at, "last_seen": None,
        },
        "hourly": hour.model_dump(exclude=envelope),
        "forecasts": forecast.model_dump(exclude=envelope),
        "forecast_trajectories": horizon._asdict(),
        "health": health.model_dump(exclude=envelope),
        "alerts": {"kind": alert.alert_kind, **alert.model_dump(exclude={*envelope, "alert_kind"}),
                   "acknowledged_at": None, "acknowledged_by": None, "note": None,
                   "resolved_by": None, "resolution_note": None},
        "anomaly_labels": {
            "label_id": label.label_id, "device_id": label.device_id, "anomaly": "drift",
            "start": label.start, "end": label.end, "first_seq": label.first_seq,
            "magnitude": label.magnitude, "nominal_kw": label.nominal_kw, "source": "command",
            "command_id": label.command_id, "received_at": ...,
        },
        "stream_offsets": {
            "group_id": "g1", "topic": "readings", "partition": 5, "next_offset": 1234,
            "updated_at": ...,
        },
    }  # fmt: skip


async def test_every_column_of_every_table_round_trips(sink: ResultSink, database: str) -> None:
    batch = distinct_batch()
    await sink.write(batch)
    expected = expected_rows(batch)
    conn = await asyncpg.connect(database)
    try:
        for table, want in expected.items():
            rows = await conn.fetch(f"SELECT * FROM {table}")
            assert len(rows) == 1, table
            got = dict(rows[0])
            # Every column of the table definition, no more, no fewer.
            assert set(got) == set(tables.metadata.tables[table].columns.keys()), table
            assert set(want) == set(got), table
            for column, value in want.items():
                if value is ...:
                    assert got[column] is not None, (table, column)
                else:
                    assert got[column] == value, (table, column, got[column], value)
                    assert type(got[column]) is type(value), (table, column)
    finally:
        await conn.close()
