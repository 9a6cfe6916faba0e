"""Per-partition event-time watermarks: highest event time seen minus the allowed lateness."""

from __future__ import annotations

from datetime import datetime, timedelta

from stream.core.localtime import floor_quarter


class PartitionWatermarks:
    """Tracks each partition's watermark and says when it crossed a 15-minute boundary.

    Local hours start on 15-minute UTC boundaries (every UTC offset is a multiple of 15
    minutes), so windows can only become due when a watermark crosses one: checking then, and
    only then, keeps the per-event cost constant.
    """

    def __init__(self, lateness: timedelta) -> None:
        self._lateness = lateness
        self._highest: dict[int, datetime] = {}
        self._checked: dict[int, datetime] = {}

    def observe(self, partition: int, event_time: datetime) -> None:
        current = self._highest.get(partition)
        if current is None or event_time > current:
            self._highest[partition] = event_time

    def watermark(self, partition: int) -> datetime | None:
        highest = self._highest.get(partition)
        return None if highest is None else highest - self._lateness

    def due(self, partition: int) -> datetime | None:
        """The watermark if it crossed a 15-minute boundary since the last ``due``, else None."""
        mark = self.watermark(partition)
        if mark is None:
            return None
        boundary = floor_quarter(mark)
        if self._checked.get(partition) == boundary:
            return None
        self._checked[partition] = boundary
        return mark

    def snapshot(self) -> tuple[dict[int, datetime], dict[int, datetime]]:
        return dict(self._highest), dict(self._checked)

    def restore(self, snapshot: tuple[dict[int, datetime], dict[int, datetime]]) -> None:
        """Undo everything since ``snapshot`` (a batch that failed will be replayed)."""
        self._highest, self._checked = dict(snapshot[0]), dict(snapshot[1])
