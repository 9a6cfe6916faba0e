"""The simulator's delivery journal: which readings the broker acknowledged (PUBACK).

A contract between the simulator, which writes it (``--journal PATH``), and the delivery audit
(``wattstream audit``), which compares it with the ``readings`` table and the closed hours.

One JSON line per :class:`JournalRange`: consecutive ``seq`` numbers of one device, acknowledged
by the broker, whose timestamps step by ``interval_s`` from ``first_ts``. A device's ranges may
overlap (the same reading acknowledged twice after a resend) and come in any order. The file is
only ever appended to and flushed after each group of lines, so a killed simulator leaves every
complete line readable; a torn last line is skipped by :func:`read_journal` (those readings were
acknowledged but are not recorded: the audit reports them as *extra*, never as missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

JOURNAL_VERSION: Literal[1] = 1


class JournalRange(BaseModel):
    """Readings ``first_seq .. first_seq + count - 1`` of one device, all acknowledged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = JOURNAL_VERSION
    device_id: str
    tz: str
    interval_s: Annotated[int, Field(ge=1)]
    first_seq: Annotated[int, Field(ge=0)]
    count: Annotated[int, Field(ge=1)]
    first_ts: AwareDatetime

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1

    def readings(self) -> Iterator[tuple[int, datetime]]:
        """(seq, ts) of every reading of the range."""
        step = timedelta(seconds=self.interval_s)
        for i in range(self.count):
            yield self.first_seq + i, self.first_ts + i * step


def compact(
    device_id: str, tz: str, interval_s: int, acked: Iterable[tuple[int, datetime]]
) -> list[JournalRange]:
    """Ranges covering ``acked`` (seq, ts) pairs of one device: a new range starts wherever
    the seq or the timestamp does not follow the previous one."""
    ranges: list[JournalRange] = []
    step = timedelta(seconds=interval_s)
    first: tuple[int, datetime] | None = None
    count = 0
    for seq, ts in sorted(set(acked)):
        if first is not None and seq == first[0] + count and ts == first[1] + count * step:
            count += 1
            continue
        if first is not None:
            ranges.append(_range(device_id, tz, interval_s, first, count))
        first, count = (seq, ts), 1
    if first is not None:
        ranges.append(_range(device_id, tz, interval_s, first, count))
    return ranges


def _range(
    device_id: str, tz: str, interval_s: int, first: tuple[int, datetime], count: int
) -> JournalRange:
    return JournalRange(
        device_id=device_id,
        tz=tz,
        interval_s=interval_s,
        first_seq=first[0],
        count=count,
        first_ts=first[1],
    )


class JournalError(ValueError):
    """A journal line other than the last is not a :class:`JournalRange`."""


def parse_journal(lines: Iterable[str]) -> list[JournalRange]:
    """Every range of the journal's lines; an unreadable *last* line (torn by a crash) is
    skipped, an unreadable line anywhere else raises :class:`JournalError`."""
    ranges: list[JournalRange] = []
    bad: tuple[int, str] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if bad is not None:
            raise JournalError(f"journal line {bad[0]}: {bad[1]}")
        try:
            ranges.append(JournalRange.model_validate_json(line))
        except ValidationError as exc:
            bad = (number, str(exc.errors()[0]["msg"]))
    return ranges


def read_journal(path: Path) -> list[JournalRange]:
    with path.open(encoding="utf-8") as lines:
        return parse_journal(lines)
