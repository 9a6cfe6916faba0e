"""Event-time windows per device-local hour, closed by the partition watermark.

:class:`DeviceWindows` is the whole per-device state the stream worker keeps (in a
changelog-backed Faust table): the open hours' accumulators, the recently closed hours (for
restatements and forecasting history) and the offset of the last event applied, which makes
applying an event idempotent — an event replayed after a crash changes nothing.

Rules:

* A reading lands in the local hour containing its ``ts`` (:mod:`stream.core.localtime`).
* The same ``seq`` twice in one hour counts once (``duplicate_count`` goes up).
* Production (units, from devices that report it) is summed per hour like energy; an hour in
  which no reading reported production has ``None``, not 0.
* An hour closes when the partition's watermark (highest event time seen on the partition
  minus the allowed lateness) reaches its end, whether or not the device spoke: an hour with
  no readings closes empty (completeness 0) for up to ``max_silent`` after the device's last
  reading; after that a silent device produces no rows until it speaks again.
* Each hour closes exactly once. A reading for an hour already closed is *late*: it is added
  to the retained closed hour, which is re-emitted as a restatement with ``revision + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schema.wire import Reading
from stream.core.localtime import LocalHour, local_hour

RETAIN_CLOSED = 48
"""Closed hours kept per device: the restatement horizon and the forecasting history."""


class HourWindow(BaseModel):
    """Accumulators of one device-local hour (never a list of readings)."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime
    local_date: date
    local_hour: int
    interval_s: int
    count: int = 0
    energy_kwh: float = 0.0
    power_sum_kw: float = 0.0
    power_min_kw: float | None = None
    power_max_kw: float | None = None
    production_units: float | None = None
    """Sum of the readings' production; ``None`` until a reading reports some."""
    seq_base: int | None = None
    seq_mask: int = 0
    """Bit ``i`` set: ``seq_base + i`` was counted (duplicate detection without a list)."""
    late_count: int = 0
    duplicate_count: int = 0
    first_ts: AwareDatetime | None = None
    last_ts: AwareDatetime | None = None
    revision: int = 0

    @classmethod
    def empty(cls, hour: LocalHour, interval_s: int) -> HourWindow:
        return cls(
            start=hour.start,
            end=hour.end,
            local_date=hour.local_date,
            local_hour=hour.local_hour,
            interval_s=interval_s,
        )

    @property
    def expected_count(self) -> int:
        return max(1, round((self.end - self.start).total_seconds() / self.interval_s))

    @property
    def completeness(self) -> float:
        return min(1.0, self.count / self.expected_count)

    @property
    def power_mean_kw(self) -> float | None:
        return self.power_sum_kw / self.count if self.count else None

    def _mark(self, seq: int) -> bool:
        """Record ``seq``; False if it was recorded before."""
        if self.seq_base is None:
            self.seq_base = seq
        elif seq < self.seq_base:
            self.seq_mask <<= self.seq_base - seq
            self.seq_base = seq
        bit = 1 << (seq - self.seq_base)
        mask = self.seq_mask
        if mask & bit:
            return False
        self.__dict__["seq_mask"] = mask | bit  # see add()
        return True

    def add(self, reading: Reading) -> bool:
        """Accumulate a reading; False (and counted as a duplicate) if its seq was seen."""
        if not self._mark(reading.seq):
            self.duplicate_count += 1
            return False
        # Per reading, the running sums go straight into the model's __dict__: pydantic's
        # __setattr__ (fields-set bookkeeping, ~1 µs) was half the cost of applying a reading,
        # and these models neither validate assignments nor dump by fields set. Other fields
        # are assigned as usual, and only when they change.
        ts = reading.ts_utc
        power = reading.power.value
        fields = self.__dict__
        fields["count"] = self.count + 1
        fields["energy_kwh"] = self.energy_kwh + reading.energy.value
        fields["power_sum_kw"] = self.power_sum_kw + power
        if reading.production is not None:
            self.production_units = (self.production_units or 0.0) + reading.production.value
        if self.power_min_kw is None or power < self.power_min_kw:
            self.power_min_kw = power
        if self.power_max_kw is None or power > self.power_max_kw:
            self.power_max_kw = power
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
        return True


class Applied(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    """After its hour closed: the hour is restated (``restated`` holds it)."""
    TOO_LATE = "too_late"
    """After its hour closed and left the retained history: counted, not restated."""
    REPLAYED = "replayed"
    """An event at or below the applied offset: already in the state, ignored."""


@dataclass(frozen=True, slots=True)
class ClosedHour:
    """A snapshot of a closed hour. ``window`` is a copy: the state's own window may still
    change (a late reading). A shallow copy is a whole one, as every field of an
    :class:`HourWindow` is immutable (a deep copy was most of the cost of closing an hour)."""

    device_id: str
    tz: str
    window: HourWindow
    restated: bool = False


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcome: Applied
    restated: ClosedHour | None = None


class DeviceWindows(BaseModel):
    """Everything the worker keeps about one device's windows."""

    model_config = ConfigDict(extra="forbid")

    device_id: str
    tz: str
    partition: int
    applied_offset: int = -1
    last_event_ts: AwareDatetime | None = None
    open: dict[str, HourWindow] = {}
    """Open hours by their UTC start (ISO-8601)."""
    closed: list[HourWindow] = []
    """The last :data:`RETAIN_CLOSED` closed hours before the ones the last :meth:`close_due`
    closed, and those, oldest first."""
    closed_until: AwareDatetime | None = None
    """End of the newest closed hour: every hour ending at or before it is closed."""

    def apply(self, reading: Reading, offset: int) -> ApplyResult:
        if offset <= self.applied_offset:
            return ApplyResult(Applied.REPLAYED)
        self.__dict__["applied_offset"] = offset  # per reading: see HourWindow.add
        if reading.tz != self.tz:
            self.tz = reading.tz
        ts = reading.ts_utc
        if self.last_event_ts is None or ts > self.last_event_ts:
            self.last_event_ts = ts
        hour = local_hour(ts, reading.tz)
        if self.closed_until is not None and hour.end <= self.closed_until:
            return self._apply_late(reading, hour)
        key = hour.key
        window = self.open.get(key)
        if window is None:
            window = self.open[key] = HourWindow.empty(hour, reading.interval_s)
        return ApplyResult(Applied.ACCEPTED if window.add(reading) else Applied.DUPLICATE)

    @property
    def retained(self) -> list[HourWindow]:
        """The closed hours a late reading can still restate: the last :data:`RETAIN_CLOSED`."""
        return self.closed[-RETAIN_CLOSED:]

    def _apply_late(self, reading: Reading, hour: LocalHour) -> ApplyResult:
        for window in self.retained:
            if window.start == hour.start:
                if not window.add(reading):
                    return ApplyResult(Applied.DUPLICATE)
                window.late_count += 1
                window.revision += 1
                snapshot = ClosedHour(self.device_id, self.tz, window.model_copy(), True)
                return ApplyResult(Applied.LATE, snapshot)
        return ApplyResult(Applied.TOO_LATE)

    def close_due(self, watermark: datetime, max_silent: timedelta) -> list[ClosedHour]:
        """Close, in order, every hour whose end is at or before ``watermark``."""
        if self.closed_until is not None:
            cursor = local_hour(self.closed_until, self.tz)
        elif self.open:
            cursor = local_hour(min(w.start for w in self.open.values()), self.tz)
        else:
            return []
        closed: list[ClosedHour] = []
        spoke = self._last_spoke()
        while cursor.end <= watermark:
            window = self.open.pop(cursor.key, None)
            if window is None:
                if spoke is None or cursor.start - spoke >= max_silent:
                    if not self.open:
                        break
                    # Silent long enough to stop emitting empty hours: skip to the next
                    # hour the device spoke in.
                    cursor = local_hour(min(w.start for w in self.open.values()), self.tz)
                    continue
                window = HourWindow.empty(cursor, self._interval_s())
            elif window.last_ts is not None:
                spoke = window.last_ts
            self.closed.append(window)
            self.closed_until = cursor.end
            closed.append(ClosedHour(self.device_id, self.tz, window.model_copy()))
            cursor = local_hour(cursor.end, self.tz)
        # The retained hours before the oldest one closed now, not before the newest: each
        # closed hour is then handled (forecast history, seasonal-naive baseline) as if it had
        # closed alone, also in a catch-up burst of more hours than are retained. The surplus
        # goes at the next close.
        del self.closed[: -(RETAIN_CLOSED + len(closed))]
        return closed

    def _last_spoke(self) -> datetime | None:
        """Time of the newest reading in a closed hour (None: none retained)."""
        for window in reversed(self.closed):
            if window.last_ts is not None:
                return window.last_ts
        return None

    def _interval_s(self) -> int:
        """The reporting interval the device used last (for an empty hour's expected count)."""
        known = [*self.closed, *self.open.values()]
        return known[-1].interval_s if known else 60

    def history_kwh(self, hours: int, until: datetime | None = None) -> list[float]:
        """Energy of the last ``hours`` closed hours up to and including the one starting at
        ``until`` (default: the newest), oldest first; fewer if not yet known."""
        closed = self.closed
        if until is not None:  # searched from the newest end, where ``until`` almost always is
            end = next((i for i in range(len(closed) - 1, -1, -1) if closed[i].start == until), -1)
            closed = closed[: end + 1]
        return [w.energy_kwh for w in closed[-hours:]]
