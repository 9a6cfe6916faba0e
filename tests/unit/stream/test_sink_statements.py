"""The sink's statements come from the table definitions, and each record fills exactly the
columns its table is written with (no column left out, no field dropped on the way)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from schema import tables
from schema.device_messages import AnomalyLabel, DeviceBirth, DeviceStatus, Location, Presence
from schema.results import Alert, Forecast, Health, HourlyAggregate
from schema.wire import Energy, Power, Reading
from stream.core.horizon_records import TrajectoryRow
from stream.worker import statements
from stream.worker.statements import Target

pytestmark = pytest.mark.unit

T = datetime(2026, 6, 1, tzinfo=UTC)
RESULTS: list[tuple[Target, type[BaseModel]]] = [
    (statements.HOURLY, HourlyAggregate),
    (statements.FORECASTS, Forecast),
    (statements.HEALTH, Health),
    (statements.ALERTS, Alert),
]


@pytest.mark.parametrize(("target", "record"), RESULTS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_result_record_fills_every_column_of_its_table(
    target: Target, record: type[BaseModel]
) -> None:
    fields = {
        "kind" if name == "alert_kind" else name
        for name in record.model_fields
        if name not in {"schema_version", "kind"}
    }
    assert set(target.columns) == fields
    assert fields | set(target.left_to_database) == set(target.table.columns.keys())


def test_a_trajectory_row_is_the_columns_of_its_table_in_order() -> None:
    target = statements.FORECAST_TRAJECTORIES.target
    assert TrajectoryRow._fields == target.columns == tuple(target.table.columns.keys())
    assert statements.FORECAST_TRAJECTORIES.update
    assert "DO UPDATE SET" in statements.FORECAST_TRAJECTORIES.merge_sql


def test_readings_births_and_statuses_fill_exactly_their_columns() -> None:
    reading = Reading(device_id="d1", seq=1, ts=T, tz="UTC", interval_s=60,
                      energy=Energy(value=0.1), power=Power(value=6.0))  # fmt: skip
    birth = DeviceBirth(device_id="d1", kind="hvac", tz="UTC",
                        location=Location(latitude=1.0, longitude=2.0), nominal_kw=3.0,
                        firmware="1", interval_s=60, ts=T)  # fmt: skip
    status = (DeviceStatus(device_id="d1", status=Presence.ONLINE), T)
    assert set(statements.reading_row(reading)) == set(statements.READINGS.target.columns)
    # The sink copies records in READING_COLUMNS order into the target's columns.
    assert statements.READINGS.target.columns == statements.READING_COLUMNS
    row = statements.reading_row(reading)
    assert statements.reading_record(reading) == tuple(row[c] for c in statements.READING_COLUMNS)
    assert set(statements.device_row(birth)) == set(statements.DEVICES.columns)
    assert set(statements.status_row(status)) == set(statements.DEVICE_STATUS.columns)
    label = AnomalyLabel.model_validate(
        {"label_id": "c:d1", "device_id": "d1", "anomaly": "dropout", "start": T, "end": T,
         "first_seq": 0, "nominal_kw": 1.0, "source": "schedule", "command_id": "c"}
    )  # fmt: skip
    row = statements.label_row(label)
    assert set(row) == set(statements.LABELS.columns)
    assert set(row) | set(statements.LABELS.left_to_database) == set(tables.anomaly_labels.c.keys())
    assert (type(row["anomaly"]), type(row["source"])) == (str, str)  # plain text for asyncpg


def test_columns_left_to_the_database_have_a_default_or_may_be_null() -> None:
    targets = [
        statements.READINGS.target,
        statements.DEVICES,
        statements.DEVICE_STATUS,
        statements.LABELS,
    ]
    for target in targets + [t for t, _ in RESULTS]:
        for name in target.left_to_database:
            column = target.table.columns[name]
            assert column.nullable or column.server_default is not None, (target, name)


def test_upserts_are_keyed_and_typed_by_the_table() -> None:
    sql = statements.HOURLY.upsert_sql
    assert sql.startswith("INSERT INTO hourly (device_id, hour_start, hour_end, tz, local_date,")
    assert "unnest($1::TEXT[], $2::TIMESTAMP WITH TIME ZONE[]" in sql
    assert "$6::SMALLINT[]" in sql  # local_hour
    assert "ON CONFLICT (device_id, hour_start) DO UPDATE SET hour_end = EXCLUDED.hour_end" in sql
    assert sql.endswith("WHERE EXCLUDED.revision >= hourly.revision")
    assert "device_id = EXCLUDED" not in sql  # the key is never updated
    assert statements.READINGS.merge_sql.endswith("ON CONFLICT (device_id, ts) DO NOTHING")
    assert "ingested_at" not in statements.READINGS.merge_sql
    with pytest.raises(ValueError, match=r"hourly has no columns \['nope'\]"):
        Target(tables.hourly, not_older_by="nope")
    with pytest.raises(ValueError, match=r"alerts has no columns \['nope'\]"):
        Target(tables.alerts, unless_set="nope")


def test_the_worker_never_rewrites_an_alert_a_person_resolved() -> None:
    sql = statements.ALERTS_UPSERT
    assert sql.endswith("WHERE alerts.resolved_by IS NULL RETURNING alert_id")
    written = set(statements.ALERTS.columns)
    assert not {"resolved_by", "resolution_note", "acknowledged_by", "note"} & written
    assert {"resolved_hour", "resolved_at"} <= written  # the worker's own resolution


def test_an_upsert_keeps_the_last_row_per_key_and_a_merge_keeps_them_all() -> None:
    rows = [{"device_id": "d", "status": s, "changed_at": T} for s in ("online", "offline")]
    assert statements.DEVICE_STATUS.last_by_key(rows) == [("d", "offline", T)]
    assert statements.DEVICE_STATUS.rows(rows) == [("d", "online", T), ("d", "offline", T)]
