"""The rollup rows KPIs are computed from: ``readings_15m`` only, never raw readings.

One device (:func:`device_figures`): its quarters priced by the database from price tables
(:mod:`api.kpi.segments`: per segment of the window, the rate of each local quarter of the week
and the intensity of each local quarter of the day, found by integer arithmetic on UTC), plus
its peak and mean demand, in one statement that returns a few rows instead of a device-month's
~3,000. (The daily rollup cannot serve it: cost needs each quarter's wall-clock band, and peak
demand the 15-minute means.)

Groups (:func:`group_quarters`): one statement per shape, built from fixed fragments (no
caller text reaches the SQL). It finds the devices, resolves each one's tariff and region from
the book's assignments (passed as arrays: the device's own entry, else its location's, else
the default), reads each one's 15-minute buckets in the window, and sums the devices of a
group per (bucket, zone, tariff, region); a second branch counts the devices of each group and
zone that reported in the window (for completeness). With ``tz=device`` a device's days are
those of its zone (birth message, else its latest bucket's).

``readings_15m`` is a continuous aggregate in TimescaleDB mode and a trigger-maintained table in
plain PostgreSQL mode, with the same columns and answers in both (:mod:`schema.storage`).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import asyncpg

from api.kpi import segments
from api.kpi.figures import Demand, Priced, Quarter, Span, Totals, Window
from api.kpi.tariffs import TariffBook

Grouping = Literal["fleet", "kind", "location"]

_GROUP_KEY: dict[Grouping, str] = {
    "fleet": "'fleet'",
    "kind": "coalesce(d.kind, 'unknown')",
    "location": "coalesce(d.location_name, 'unknown')",
}


DEVICE_SITE = """
SELECT (SELECT tz FROM devices WHERE device_id = $1) AS tz,
       (SELECT location_name FROM devices WHERE device_id = $1) AS location_name,
       (SELECT tz FROM readings WHERE device_id = $1 ORDER BY ts DESC LIMIT 1) AS last_tz
"""


@dataclass(frozen=True, slots=True)
class Site:
    tz: str
    """The device's zone: its birth message's, else its latest reading's."""
    location: str | None


async def device_site(conn: asyncpg.Connection, device_id: str) -> Site | None:
    """Zone and location of a device in one round trip; ``None``: an unknown device."""
    row = await conn.fetchrow(DEVICE_SITE, device_id)
    tz = row["tz"] or row["last_tz"]
    return None if tz is None else Site(tz, row["location_name"])


# A device's quarters, priced by the database in one pass and one row. One index range scan
# of the rollup over the window; each quarter finds its segment among the starts $2 (ends $3;
# api.kpi.segments) and, from the segment's UTC offset plus a week ($4: never negative), its
# local quarter of the week (epoch + shift) % 604800 / 900, whose rate and intensity the packed
# tables give ($7: 672 one-byte indexes into the rates $6 a segment; $9: 96 into the
# intensities $8). Peak demand is the largest (power, -epoch) pair: the earliest of equal
# peaks, with no sort and no second scan. Quarters reported from another zone than the
# device's ($5, a device that moved) are only counted here; OTHER_QUARTERS reads them when
# there are any. Each layer is fenced (OFFSET 0) so that its columns are computed once a row,
# not once a use (a third of the time).
DEVICE_FIGURES = """
SELECT count(*) FILTER (WHERE own) AS quarters,
       sum(energy_kwh) FILTER (WHERE own) AS energy_kwh,
       sum(energy_kwh * ($6::float8[])[r]) FILTER (WHERE own) AS cost,
       sum(energy_kwh * ($8::float8[])[i]) FILTER (WHERE own) AS carbon_kg,
       sum(production_units) FILTER (WHERE own) AS production_units,
       sum(energy_kwh) FILTER (WHERE own AND production_units IS NOT NULL)
           AS production_energy_kwh,
       max(ARRAY[power_mean_kw, -epoch]) FILTER (WHERE power_mean_kw IS NOT NULL) AS peak,
       avg(power_mean_kw) AS mean_kw,
       count(*) FILTER (WHERE NOT own) AS others
FROM (
    SELECT own, energy_kwh, power_mean_kw, production_units, epoch,
           get_byte($7::bytea, (seg - 1) * 672 + qow) + 1 AS r,
           get_byte($9::bytea, (seg - 1) * 96 + qow % 96) + 1 AS i
    FROM (
        SELECT tz = $5::text AS own, energy_kwh, power_mean_kw, production_units, epoch, seg,
               ((epoch::bigint + ($4::int[])[seg]) % 604800 / 900)::int AS qow
        FROM (
            SELECT tz, energy_kwh, power_mean_kw, production_units,
                   date_part('epoch', bucket) AS epoch,
                   width_bucket(bucket, $2::timestamptz[]) AS seg
            FROM readings_15m
            WHERE device_id = $1 AND bucket >= ($2::timestamptz[])[1]
              AND bucket < ($3::timestamptz[])[cardinality($3::timestamptz[])]
            OFFSET 0
        ) AS q
        OFFSET 0
    ) AS k
    OFFSET 0
) AS priced
"""


async def device_figures(
    conn: asyncpg.Connection, book: TariffBook, window: Window, device_id: str, site: Site
) -> Priced:
    """One device's quarters in ``window`` (fixed bounds), priced by its own tariff and
    region in the database, and its demand: one statement, one row (and a second one for
    quarters of another zone, when there are any)."""
    tariff, region = book.choice(device_id, site.location)
    tables = segments.packed_tables(
        book.tariffs[tariff], book.regions[region], site.tz, window.first, window.last
    )
    if tables is None:  # too many distinct rates to pack: every quarter priced in Python
        quarters = await device_quarters(conn, book, window, device_id, site)
        power = {q.bucket: q.power_kw for q in quarters if q.power_kw is not None}
        return Priced(Totals(0.0, 0.0, 0.0, 0, None, None), tariff, quarters, Demand.of(power))
    row = await conn.fetchrow(
        DEVICE_FIGURES,
        device_id,
        tables.starts,
        tables.ends,
        tables.shifts,
        site.tz,
        tables.rate_palette,
        tables.rates,
        tables.intensity_palette,
        tables.intensities,
    )
    totals = Totals(0.0, 0.0, 0.0, 0, None, None)
    if row["quarters"]:
        totals = Totals(
            row["energy_kwh"],
            row["cost"],
            row["carbon_kg"],
            row["quarters"],
            row["production_units"],
            row["production_energy_kwh"],
        )
    others: list[Quarter] = []
    if row["others"]:
        moved = await conn.fetch(OTHER_QUARTERS, device_id, window.first, window.last, site.tz)
        others = [quarter_of(r, tariff, region) for r in moved]
    demand = Demand(mean_kw=row["mean_kw"])
    if row["peak"] is not None:
        power, minus_epoch = row["peak"]
        demand = Demand(power, datetime.fromtimestamp(-minus_epoch, UTC), row["mean_kw"])
    return Priced(totals, tariff, others, demand)


DEVICE_QUARTERS = """
SELECT bucket, tz, energy_kwh, power_mean_kw, production_units
FROM readings_15m
WHERE device_id = $1 AND bucket >= $2 AND bucket < $3
"""
OTHER_QUARTERS = DEVICE_QUARTERS + "AND tz <> $4::text\n"
"""The quarters of a device reported from another zone than $4."""


async def device_quarters(
    conn: asyncpg.Connection, book: TariffBook, window: Window, device_id: str, site: Site
) -> list[Quarter]:
    """One device's quarters in ``window``, one row each, for :func:`api.kpi.figures.compute`:
    what :func:`device_figures` prices in the database (the benchmark's before-figure, and the
    tests' check that both give the same KPIs)."""
    tariff, region = book.choice(device_id, site.location)
    rows = await conn.fetch(DEVICE_QUARTERS, device_id, window.first, window.last)
    return [quarter_of(row, tariff, region) for row in rows]


def quarter_of(
    row: asyncpg.Record, tariff: str, region: str, *, power: str = "power_mean_kw"
) -> Quarter:
    """One device's quarter from a row with its bucket, zone, energy, mean power (column
    ``power``) and production (a ``readings_15m`` row, or the same from raw readings)."""
    units = row["production_units"]
    return Quarter(
        row["bucket"],
        row["tz"],
        tariff,
        region,
        row["energy_kwh"],
        row[power],
        1,
        units,
        None if units is None else row["energy_kwh"],
    )


# Where the quarters come from: the rollup (what the API reads), or the same sums computed from
# raw readings (the reference the parity test and the benchmark compare with).
_SOURCES = {
    "rollup": {
        # Loose index scan of the rollup's primary key (device_id, bucket): one probe a device.
        "scan": """
ids_scan(device_id) AS (
    (SELECT device_id FROM readings_15m ORDER BY device_id LIMIT 1)
    UNION ALL
    SELECT (SELECT q.device_id FROM readings_15m AS q WHERE q.device_id > s.device_id
            ORDER BY q.device_id LIMIT 1)
    FROM ids_scan AS s WHERE s.device_id IS NOT NULL
),""",
        "ids": "SELECT device_id FROM ids_scan WHERE device_id IS NOT NULL",
        "last_tz": "(SELECT x.tz FROM readings_15m AS x WHERE x.device_id = i.device_id"
        " ORDER BY x.bucket DESC LIMIT 1)",
        "quarters": "readings_15m",
    },
    "raw": {
        "scan": "",
        "ids": "SELECT DISTINCT device_id FROM readings WHERE ts >= $1 AND ts < $2",
        "last_tz": "(SELECT x.tz FROM readings AS x WHERE x.device_id = i.device_id"
        " ORDER BY x.ts DESC LIMIT 1)",
        "quarters": """(
    SELECT device_id, date_bin('15 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket,
           max(tz) AS tz, sum(energy_kwh) AS energy_kwh, avg(power_kw) AS power_mean_kw,
           sum(production_units) AS production_units
    FROM readings WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2
)""",
    },
}


@functools.cache
def statement(
    grouping: Grouping, *, own_zone: bool, source: Literal["rollup", "raw"] = "rollup"
) -> str:
    """SQL of a group KPI query. Parameters: $1/$2 the UTC bounds, $3-$5 device assignments
    (ids, tariffs, regions), $6-$8 location assignments, $9/$10 default tariff and region,
    then, with ``own_zone``, the local date bounds ($11/$12).

    Per device (found by a loose index scan; then its zone, group, tariff and region, and the
    bounds of the window in its zone, computed once), its quarters by primary-key range: no
    scan of the whole rollup, no zone conversion per row. The quarters are summed per (bucket,
    zone) and a small number standing for the device's (group, tariff, region), whose names
    join back after the sums: hashing three texts a quarter cost a third of the statement.
    ``source="raw"``: the same over raw readings, for checks and benchmarks only (the API never
    reads raw readings for KPIs).
    """
    parts = _SOURCES[source]
    if own_zone:
        # Each device's own local days: [midnight of $11, midnight of $12) in its zone.
        bounds = (
            "($11::date::timestamp AT TIME ZONE z.tz) AS lo,"
            " ($12::date::timestamp AT TIME ZONE z.tz) AS hi"
        )
    else:
        bounds = "$1::timestamptz AS lo, $2::timestamptz AS hi"
    return f"""
WITH RECURSIVE {parts["scan"]}
ids(device_id) AS ({parts["ids"]}),
own(device_id, tariff, region) AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[])),
site(location_name, tariff, region) AS (
    SELECT * FROM unnest($6::text[], $7::text[], $8::text[])
),
fleet AS (
    SELECT i.device_id, {_GROUP_KEY[grouping]} AS grp, z.tz,
           coalesce(own.tariff, site.tariff, $9::text) AS tariff,
           coalesce(own.region, site.region, $10::text) AS region,
           {bounds}
    FROM ids AS i
    LEFT JOIN devices AS d ON d.device_id = i.device_id
    CROSS JOIN LATERAL (SELECT coalesce(d.tz, {parts["last_tz"]}) AS tz) AS z
    LEFT JOIN own ON own.device_id = i.device_id
    LEFT JOIN site ON site.location_name = d.location_name
),
keyed AS (
    SELECT f.*, dense_rank() OVER (ORDER BY f.grp, f.tariff, f.region) AS k FROM fleet AS f
),
summed AS (
    SELECT f.k, r.bucket, r.tz, sum(r.energy_kwh) AS energy_kwh,
           sum(r.power_mean_kw) AS power_kw, count(*) AS devices,
           sum(r.production_units) AS production_units,
           sum(r.energy_kwh) FILTER (WHERE r.production_units IS NOT NULL)
               AS production_energy_kwh
    FROM keyed AS f
    JOIN {parts["quarters"]} AS r
      ON r.device_id = f.device_id AND r.bucket >= f.lo AND r.bucket < f.hi
     AND r.bucket >= $1::timestamptz AND r.bucket < $2::timestamptz
    GROUP BY f.k, r.bucket, r.tz
)
SELECT keys.grp, s.bucket, s.tz, keys.tariff, keys.region, s.energy_kwh, s.power_kw, s.devices,
       s.production_units, s.production_energy_kwh
FROM summed AS s JOIN (SELECT DISTINCT k, grp, tariff, region FROM keyed) AS keys USING (k)
UNION ALL
SELECT grp, NULL, tz, NULL, NULL, NULL, NULL, count(*), NULL, NULL
FROM fleet AS f
WHERE EXISTS (
    SELECT 1 FROM {parts["quarters"]} AS r
    WHERE r.device_id = f.device_id AND r.bucket >= f.lo AND r.bucket < f.hi
)
GROUP BY grp, tz
"""  # noqa: S608 - fixed fragments only


def reference_statement(grouping: Grouping, *, own_zone: bool) -> str:
    """:func:`statement` over the same sums computed from raw readings instead of the rollup:
    for the parity test and the benchmark only (the API never scans raw readings)."""
    return statement(grouping, own_zone=own_zone, source="raw")


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
                    row["production_units"],
                    row["production_energy_kwh"],
                )
            )
    return dict(groups)
