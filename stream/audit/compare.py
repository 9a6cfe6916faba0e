"""The delivery audit itself: what was published against what was stored. Pure, no I/O.

Readings: every ``seq`` the journal records (acknowledged by the broker) must be in
``readings`` exactly once per device. *Missing*: journaled, not stored. *Duplicated*: stored
more than once (rows beyond the first, counted by the query, so a missing uniqueness constraint
would show). *Extra*: stored, not journaled (acknowledged just before the simulator died, or
published by something else): reported, not a failure.

Hours (see :mod:`stream.audit.hours`): for each of ``hourly``, ``forecasts`` and ``health``,
every expected (device, hour) must have exactly one row. *Missing*, *duplicated* (rows beyond
the first per (device, hour), whatever their model) and *extra* (a row for an hour that is not
closed) are all failures: the worker promises exactly one row per (device, closed hour).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schema.journal import JournalRange
from stream.audit.hours import ExpectedHours, expected_hours

HOUR_TABLES = ("hourly", "forecasts", "health")


@dataclass(frozen=True, slots=True)
class StoredReading:
    device_id: str
    seq: int
    ts: datetime
    tz: str
    rows: int
    """Rows with this (device, seq): more than one is a duplicate."""


@dataclass(frozen=True, slots=True)
class StoredHour:
    device_id: str
    hour_start: datetime
    rows: int


@dataclass(frozen=True, slots=True)
class AuditRules:
    """The worker's settings the expectations depend on (its defaults unless told)."""

    lateness: timedelta = timedelta(minutes=5)
    max_silent: timedelta = timedelta(hours=3)
    history_hours: int = 24
    partitions: int = 6


@dataclass(slots=True)
class Tally:
    expected: int = 0
    stored: int = 0
    missing: int = 0
    duplicated: int = 0
    extra: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Outcome -> a few ``device: ranges`` examples."""


@dataclass(slots=True)
class AuditReport:
    readings: Tally
    hours: dict[str, Tally]
    devices: int

    @property
    def ok(self) -> bool:
        """No reading lost or stored twice; exactly one row per (device, closed hour)."""
        return (
            self.readings.missing == 0
            and self.readings.duplicated == 0
            and all(t.missing == t.duplicated == t.extra == 0 for t in self.hours.values())
        )

    def lines(self) -> list[str]:
        def describe(name: str, tally: Tally) -> list[str]:
            out = [
                f"{name:<9} expected {tally.expected:>8}  stored {tally.stored:>8}  "
                f"missing {tally.missing:>6}  duplicated {tally.duplicated:>6}  "
                f"extra {tally.extra:>6}"
            ]
            for outcome, examples in tally.examples.items():
                out += [f"  {outcome}: {example}" for example in examples]
            return out

        lines = [f"devices   {self.devices}", *describe("readings", self.readings)]
        for table, tally in self.hours.items():
            lines += describe(table, tally)
        lines.append("audit: OK" if self.ok else "audit: FAILED")
        return lines


def seq_ranges(seqs: Iterable[int], limit: int = 4) -> str:
    """``3-7,9,12-13`` (at most ``limit`` ranges, then ``...``)."""
    ordered = sorted(set(seqs))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    shown = ",".join(parts[:limit])
    return shown + (",..." if len(parts) > limit else "")


def _examples(by_device: Mapping[str, Iterable[object]], limit: int) -> list[str]:
    out = []
    for device in sorted(by_device)[:limit]:
        values = list(by_device[device])
        if values and isinstance(values[0], int):
            text = seq_ranges(values)  # type: ignore[arg-type]
        else:
            shown = sorted(values)[:3]  # type: ignore[type-var]
            text = ", ".join(v.isoformat() for v in shown)  # type: ignore[attr-defined]
            text += ", ..." if len(values) > 3 else ""
        out.append(f"{device}: {text}")
    return out


def audit(
    journal: Sequence[JournalRange],
    readings: Sequence[StoredReading],
    hours: Mapping[str, Sequence[StoredHour]],
    rules: AuditRules,
    *,
    examples: int = 3,
) -> AuditReport:
    published: defaultdict[str, dict[int, datetime]] = defaultdict(dict)
    zones: dict[str, str] = {}
    for journal_range in journal:
        zones[journal_range.device_id] = journal_range.tz
        published[journal_range.device_id].update(journal_range.readings())
    stored: defaultdict[str, dict[int, datetime]] = defaultdict(dict)
    tally = Tally(expected=sum(len(s) for s in published.values()))
    duplicated: defaultdict[str, list[int]] = defaultdict(list)
    for reading in readings:
        stored[reading.device_id][reading.seq] = reading.ts
        zones.setdefault(reading.device_id, reading.tz)
        tally.stored += reading.rows
        if reading.rows > 1:
            tally.duplicated += reading.rows - 1
            duplicated[reading.device_id].append(reading.seq)
    missing = {d: [s for s in seqs if s not in stored.get(d, {})] for d, seqs in published.items()}
    extra = {d: [s for s in seqs if s not in published.get(d, {})] for d, seqs in stored.items()}
    missing = {d: s for d, s in missing.items() if s}
    extra = {d: s for d, s in extra.items() if s}
    tally.missing = sum(map(len, missing.values()))
    tally.extra = sum(map(len, extra.values()))
    for outcome, found in (("missing", missing), ("duplicated", duplicated), ("extra", extra)):
        if found:
            tally.examples[outcome] = _examples(found, examples)

    seen = {
        d: (zones[d], [*published.get(d, {}).values(), *stored.get(d, {}).values()]) for d in zones
    }
    expected = expected_hours(
        seen,
        lateness=rules.lateness,
        max_silent=rules.max_silent,
        history_hours=rules.history_hours,
        partitions=rules.partitions,
    )
    report = AuditReport(readings=tally, hours={}, devices=len(zones))
    for table in HOUR_TABLES:
        report.hours[table] = _audit_hours(table, expected, hours.get(table, ()), examples)
    return report


def _audit_hours(
    table: str, expected: Mapping[str, ExpectedHours], rows: Sequence[StoredHour], examples: int
) -> Tally:
    def wanted(device: str) -> frozenset[datetime]:
        hours = expected.get(device)
        if hours is None:
            return frozenset()
        return hours.forecasts if table == "forecasts" else hours.hourly

    tally = Tally(expected=sum(len(wanted(d)) for d in expected))
    have: defaultdict[str, dict[datetime, int]] = defaultdict(dict)
    for row in rows:
        counts = have[row.device_id]
        counts[row.hour_start] = counts.get(row.hour_start, 0) + row.rows
        tally.stored += row.rows
    missing, duplicated, extra = defaultdict(list), defaultdict(list), defaultdict(list)
    for device in set(expected) | set(have):
        want, got = wanted(device), have.get(device, {})
        missing[device] = [h for h in want if h not in got]
        extra[device] = [h for h in got if h not in want]
        duplicated[device] = [h for h, n in got.items() if n > 1]
        tally.duplicated += sum(n - 1 for n in got.values() if n > 1)
    tally.missing = sum(map(len, missing.values()))
    tally.extra = sum(map(len, extra.values()))
    for outcome, found in (("missing", missing), ("duplicated", duplicated), ("extra", extra)):
        nonempty = {d: v for d, v in found.items() if v}
        if nonempty:
            tally.examples[outcome] = _examples(nonempty, examples)
    return tally
