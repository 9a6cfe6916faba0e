from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schema.journal import JournalError, compact, parse_journal

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def at(seq: int) -> datetime:
    return T0 + timedelta(minutes=seq)


def test_compact_makes_one_range_per_consecutive_run_and_round_trips() -> None:
    acked = [(s, at(s)) for s in [*range(10), *range(12, 20), 5, 3]]  # resends repeat seqs
    ranges = compact("dev-1", "Europe/Berlin", 60, acked)
    assert [(r.first_seq, r.last_seq) for r in ranges] == [(0, 9), (12, 19)]
    lines = [r.model_dump_json() for r in ranges]
    back = parse_journal(lines)
    assert back == ranges
    assert {s for r in back for s, _ in r.readings()} == {s for s, _ in acked}
    assert dict(r for x in back for r in x.readings()) == dict(acked)


def test_a_timestamp_that_does_not_follow_starts_a_new_range() -> None:
    acked = [(0, at(0)), (1, at(1)), (2, at(5))]  # e.g. an interval change
    ranges = compact("dev-1", "UTC", 60, acked)
    assert [(r.first_seq, r.count, r.first_ts) for r in ranges] == [(0, 2, at(0)), (2, 1, at(5))]


def test_a_torn_last_line_is_skipped_but_a_bad_line_before_others_is_an_error() -> None:
    good = compact("dev-1", "UTC", 60, [(0, at(0))])[0].model_dump_json()
    assert parse_journal([good, good[:20]]) == [compact("dev-1", "UTC", 60, [(0, at(0))])[0]]
    with pytest.raises(JournalError, match="line 1"):
        parse_journal([good[:20], good])
