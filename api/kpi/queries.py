"""The rollup rows KPIs are computed from: ``readings_15m`` only, never raw readings.

One statement per shape, built from fixed fragments (no caller text reaches the SQL). It picks
the 15-minute buckets of the window, resolves each device's tariff and region from the book's
assignments (passed as arrays: the device's own entry, else its location's, else the default),
and sums the devices of a group per (bucket, zone, tariff, region); a second branch counts the
devices of each group and zone that reported in the window (for completeness).

``readings_15m`` is a continuous aggregate in TimescaleDB mode and a trigger-maintained table in
plain PostgreSQL mode, with the same columns and answers in both (:mod:`schema.storage`).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Literal

import asyncpg

from api.kpi.figures import Quarter, Span, Window
from api.kpi.tariffs import TariffBook

Grouping = Literal["fleet", "kind", "location"]

_GROUP_KEY: dict[Grouping, str] = {
    "fleet": "'fleet'",
    "kind": "coalesce(d.kind, 'unknown')",
    "location": "coalesce(d.location_name, 'unknown')",
}


DEVICE_QUARTERS = """
SELECT bucket, tz, energy_kwh, power_mean_kw
FROM readings_15m
WHERE device_id = $1 AND bucket >= $2 AND bucket < $3
"""
DEVICE_LOCATION = "SELECT location_name FROM devices WHERE device_id = $1"


async def device_quarters(
    conn: asyncpg.Connection, book: TariffBook, window: Window, device_id: str
) -> list[Quarter]:
    """One device's quarters in ``window``, priced by its own tariff and region (resolved
    here: one device needs no join)."""
    location = await conn.fetchval(DEVICE_LOCATION, device_id)
    tariff, region = book.choice(device_id, location)
    rows = await conn.fetch(DEVICE_QUARTERS, device_id, window.first, window.last)
    return [
        Quarter(row["bucket"], row["tz"], tariff, region, row["energy_kwh"], row["power_mean_kw"])
        for row in rows
    ]


@functools.cache
def statement(grouping: Grouping, *, own_zone: bool) -> str:
    """SQL of a group KPI query. Parameters: $1/$2 the UTC bounds, $3-$5 device assignments
    (ids, tariffs, regions), $6-$8 location assignments, $9/$10 default tariff and region,
    then, with ``own_zone``, the local date bounds ($11/$12)."""
    where = ["r.bucket >= $1", "r.bucket < $2"]
    if own_zone:
        # Each device's own local days: its wall-clock date at the bucket's start.
        where.append("(r.bucket AT TIME ZONE r.tz)::date >= $11")
        where.append("(r.bucket AT TIME ZONE r.tz)::date < $12")
    return f"""
WITH own(device_id, tariff, region) AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[])),
site(location_name, tariff, region) AS (
    SELECT * FROM unnest($6::text[], $7::text[], $8::text[])
),
picked AS (
    SELECT {_GROUP_KEY[grouping]} AS grp, r.device_id, r.bucket, r.tz, r.energy_kwh,
           r.power_mean_kw,
           coalesce(own.tariff, site.tariff, $9::text) AS tariff,
           coalesce(own.region, site.region, $10::text) AS region
    FROM readings_15m AS r
    LEFT JOIN devices AS d ON d.device_id = r.device_id
    LEFT JOIN own ON own.device_id = r.device_id
    LEFT JOIN site ON site.location_name = d.location_name
    WHERE {" AND ".join(where)}
)
SELECT grp, bucket, tz, tariff, region, sum(energy_kwh) AS energy_kwh,
       sum(power_mean_kw) AS power_kw, count(*) AS devices
FROM picked
GROUP BY grp, bucket, tz, tariff, region
UNION ALL
SELECT grp, NULL, tz, NULL, NULL, NULL, NULL, count(DISTINCT device_id)
FROM picked
GROUP BY grp, tz
"""  # noqa: S608 - fixed fragments only


def arguments(book: TariffBook, window: Window) -> list[object]:
    """The parameters of :func:`statement` for ``book`` and ``window``."""
    devices = sorted(book.devices.items())
    locations = sorted(book.locations.items())
    args: list[object] = [
        window.first,
        window.last,
        [key for key, _ in devices],
        [a.tariff for _, a in devices],
        [a.region for _, a in devices],
        [key for key, _ in locations],
        [a.tariff for _, a in locations],
        [a.region for _, a in locations],
        book.default_tariff,
        book.default_region,
    ]
    if window.local_days is not None:
        args += list(window.local_days)
    return args


Groups = dict[str, tuple[list[Quarter], list[Span]]]


async def group_quarters(
    conn: asyncpg.Connection, book: TariffBook, window: Window, grouping: Grouping
) -> Groups:
    """Per group: its summed quarters and its reporting devices per zone."""
    sql = statement(grouping, own_zone=window.local_days is not None)
    return groups_of(await conn.fetch(sql, *arguments(book, window)))


def groups_of(records: list[asyncpg.Record]) -> Groups:
    """The rows of :func:`statement` per group."""
    groups: Groups = defaultdict(lambda: ([], []))
    for row in records:
        quarters, spans = groups[row["grp"]]
        if row["bucket"] is None:
            spans.append(Span(row["tz"], row["devices"]))
        else:
            quarters.append(
                Quarter(
                    row["bucket"],
                    row["tz"],
                    row["tariff"],
                    row["region"],
                    row["energy_kwh"],
                    row["power_kw"],
                    row["devices"],
                )
            )
    return dict(groups)
