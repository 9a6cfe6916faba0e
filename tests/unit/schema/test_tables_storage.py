"""The table contract other packages code against, and the storage options (no I/O)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import CheckConstraint, Index

from schema import storage, tables
from schema.device_messages import AnomalyKind, AnomalyLabel, LabelSource

pytestmark = pytest.mark.unit

# Exactly the names and columns the issue fixes (other engineers write against them);
# production_units (issue 16, migration 0007) last, as ALTER TABLE adds it.
CONTRACT = {
    "readings": (
        [
            "device_id", "ts", "seq", "tz", "interval_s", "energy_kwh", "power_kw", "ingested_at",
            "production_units",
        ],
        ["device_id", "ts"],
    ),
    "devices": (
        [
            "device_id", "kind", "tz", "latitude", "longitude", "location_name", "nominal_kw",
            "firmware", "interval_s", "first_seen", "updated_at",
        ],
        ["device_id"],
    ),
    "device_status": (["device_id", "status", "changed_at", "last_seen"], ["device_id"]),
    "hourly": (
        [
            "device_id", "hour_start", "hour_end", "tz", "local_date", "local_hour", "energy_kwh",
            "power_mean_kw", "power_min_kw", "power_max_kw", "reading_count", "expected_count",
            "completeness", "late_count", "duplicate_count", "first_ts", "last_ts", "revision",
            "closed_at", "production_units",
        ],
        ["device_id", "hour_start"],
    ),
    "forecasts": (
        [
            "device_id", "hour_start", "model_id", "predicted_kwh", "baseline_kwh",
            "based_on_hour", "issued_at",
        ],
        ["device_id", "hour_start", "model_id"],
    ),
    # Read one row per target through the view forecast_horizons (migration 0011).
    "forecast_trajectories": (
        [
            "device_id", "issue_time", "horizon", "model_id", "bounds", "local_dates",
            "local_hours", "p10_kwh", "p50_kwh", "p90_kwh", "issued_at",
        ],
        ["device_id", "issue_time", "horizon", "model_id"],
    ),
    "health": (
        [
            "device_id", "hour_start", "rmse_24h", "mae_24h", "mape_24h", "bias_24h",
            "naive_rmse_24h", "rmse_ratio", "status", "completeness_24h", "gaps_24h", "late_24h",
            "duplicates_24h", "presence", "last_seen", "computed_at",
        ],
        ["device_id", "hour_start"],
    ),
    "alerts": (
        [
            "device_id", "hour_start", "kind", "severity", "residual_kwh", "sigma", "z",
            "message", "raised_at", "alert_id", "last_hour_start", "hours", "updated_at",
            "resolved_hour", "resolved_at", "acknowledged_at", "acknowledged_by", "note",
            "resolved_by", "resolution_note",
        ],
        ["device_id", "hour_start", "kind"],
    ),
    "anomaly_labels": (
        [
            "label_id", "device_id", "anomaly", "start", "end", "first_seq", "magnitude",
            "nominal_kw", "source", "command_id", "received_at",
        ],
        ["label_id"],
    ),
    "models": (
        ["model_id", "created_at", "metrics", "card", "active", "activated_at"],
        ["model_id"],
    ),
    "storage_info": (["key", "value"], ["key"]),
    "stream_offsets": (
        ["group_id", "topic", "partition", "next_offset", "updated_at"],
        ["group_id", "topic", "partition"],
    ),
    "command_requests": (
        ["client", "idempotency_key", "request_hash", "status_code", "response", "created_at"],
        ["client", "idempotency_key"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_table_has_the_contracted_columns_and_key(name: str) -> None:
    table = tables.metadata.tables[name]
    columns, key = CONTRACT[name]
    assert [c.name for c in table.columns] == columns
    assert [c.name for c in table.primary_key.columns] == key


def test_metadata_holds_exactly_the_contracted_tables() -> None:
    assert set(tables.metadata.tables) == set(CONTRACT)


def test_label_columns_follow_the_label_contract() -> None:
    """Every field of the wire label has its column, and the checked values are the enums'."""
    fields = set(AnomalyLabel.model_fields) - {"schema_version"}
    assert fields <= {c.name for c in tables.anomaly_labels.columns}
    assert set(tables.ANOMALY_KINDS) == {k.value for k in AnomalyKind}
    assert set(tables.LABEL_SOURCES) == {s.value for s in LabelSource}


def test_every_timestamp_is_timezone_aware() -> None:
    for table in tables.metadata.tables.values():
        for column in table.columns:
            if column.type.python_type.__name__ == "datetime":
                assert column.type.timezone, f"{table.name}.{column.name}"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("table", "values"),
    [
        ("device_status", tables.DEVICE_STATUSES),
        ("health", tables.HEALTH_STATUSES),
        ("alerts", tables.ALERT_SEVERITIES),
        ("alerts", tables.ALERT_KINDS),
        ("anomaly_labels", tables.ANOMALY_KINDS),
        ("anomaly_labels", tables.LABEL_SOURCES),
    ],
)
def test_enumerated_columns_are_checked(table: str, values: tuple[str, ...]) -> None:
    checks = [
        str(c.sqltext)
        for c in tables.metadata.tables[table].constraints
        if isinstance(c, CheckConstraint)
    ]
    assert len([c for c in checks if all(f"'{v}'" in c for v in values)]) == 1


def test_at_most_one_active_model_is_a_partial_unique_index() -> None:
    (index,) = [i for i in tables.models.indexes if isinstance(i, Index) and i.unique]
    assert [c.name for c in index.columns] == ["active"]
    assert index.dialect_options["postgresql"]["where"] is not None


def test_rollups_are_outside_the_metadata_and_filtered_from_autogenerate() -> None:
    assert not set(storage.ROLLUPS) & set(tables.metadata.tables)
    for name in storage.ROLLUPS:
        assert not storage.include_object(None, name, "table", True, None)
    assert storage.include_object(None, "readings", "table", True, None)
    assert storage.include_object(None, "readings_15m", "index", True, None)


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 days", timedelta(days=7)),
        ("1 day", timedelta(days=1)),
        (" 36 Hours ", timedelta(hours=36)),
        ("90 minutes", timedelta(minutes=90)),
        ("2 weeks", timedelta(days=14)),
        ("off", None),
        ("none", None),
    ],
)
def test_parse_interval(text: str, expected: timedelta | None) -> None:
    assert storage.parse_interval(text) == expected


@pytest.mark.parametrize(
    "text", ["7", "seven days", "1 month", "0 days", "-1 day", "1 day 2 hours"]
)
def test_parse_interval_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="interval"):
        storage.parse_interval(text)


def test_there_is_no_refresh_lookback_any_more() -> None:
    # Refreshes cover the whole history (migration 0005): a lookback would drop older buckets.
    with pytest.raises(ValueError, match="unknown storage options"):
        storage.StorageOptions.from_strings({"refresh_lookback": "30 days"})


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (timedelta(days=7), "INTERVAL '7 days'"),
        (timedelta(hours=36), "INTERVAL '36 hours'"),
        (timedelta(minutes=90), "INTERVAL '90 minutes'"),
        (timedelta(seconds=45), "INTERVAL '45 seconds'"),
    ],
)
def test_sql_interval(value: timedelta, literal: str) -> None:
    assert storage.sql_interval(value) == literal


def test_options_defaults_and_strings() -> None:
    default = storage.StorageOptions()
    assert default.mode == "auto"
    assert default.describe() == {"compress_after": "7 days", "retention": "off"}
    given = storage.StorageOptions.from_strings(
        {"storage_mode": "PostgreSQL", "compress_after": "off", "retention": "90 days"}
    )
    assert (given.mode, given.compress_after, given.retention) == (
        "postgresql",
        None,
        timedelta(days=90),
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"storage_mode": "mysql"}, "storage mode must be one of"),
        ({"retention": "soon"}, "not an interval"),
        ({"compression": "7 days"}, "unknown storage options"),
    ],
)
def test_options_refuse_bad_values(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        storage.StorageOptions.from_strings(values)


def test_policy_statements_follow_the_options() -> None:
    options = storage.StorageOptions(
        compress_after=timedelta(days=3),
        retention=timedelta(days=400),
    )
    sql = storage.policy_statements(options)
    assert "SELECT add_compression_policy('readings', compress_after => INTERVAL '3 days')" in sql
    assert "SELECT add_retention_policy('readings', drop_after => INTERVAL '400 days')" in sql
    # The rollups have no refresh policies: wattstream_settle_rollups() refreshes them.
    assert not [s for s in sql if "continuous_aggregate_policy" in s]
    # Every policy is removed before it is added: applying twice is the same as once.
    for added in [s for s in sql if "add_" in s]:
        removed = added.split("(")[0].replace("add_", "remove_")
        assert sql.index(next(s for s in sql if s.startswith(removed))) < sql.index(added)

    off = storage.policy_statements(storage.StorageOptions(compress_after=None))
    assert not [s for s in off if "add_compression_policy" in s or "add_retention_policy" in s]
    assert "SELECT remove_compression_policy('readings', if_exists => true)" in off


def test_refresh_statements_only_in_timescaledb_mode() -> None:
    assert storage.refresh_statements("postgresql") == []
    assert storage.refresh_statements(None) == []
    assert storage.refresh_statements("timescaledb") == ["CALL wattstream_settle_rollups()"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--storage-mode", "mysql"], "storage mode must be one of"),
        (["--refresh-lookback", "30 days"], "unrecognized arguments"),
        (["--compress-after", "soon"], "not an interval"),
    ],
)
def test_migrate_command_refuses_bad_storage_flags(flags: list[str], message: str) -> None:
    # Refused while parsing the flags: the URL is never contacted.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wattstream",
            "migrate",
            "--database-url",
            "postgresql://x@h/db",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
