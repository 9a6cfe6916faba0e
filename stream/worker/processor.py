"""Turns a batch of source events into state changes, database rows and result messages.

Faust-free on purpose: the agent hands over :class:`Event` values (Kafka's records; tests build
:class:`SourceEvent`) and a mapping for the
per-device state (the Faust table in production, a dict in tests), and gets back when the
batch's effects are in the database and on Kafka. Order of effects, for at-least-once without
duplicates:

1. apply every event to its device's state (idempotent by Kafka offset: a replayed event
   changes nothing) and close the hours the partition watermarks passed;
2. one batched model call for every forecast request of the batch (off the event loop);
3. one database transaction with the raw readings and every row (all idempotent upserts);
   the sink reports the batch's alerts a person resolved meanwhile (their rows stay as the
   person left them), and where such a condition still holds a second write opens the new
   alert that continues it (:func:`stream.core.alerts.after_manual_resolution`);
4. the result messages to Kafka, waiting for their acknowledgement;
5. the new device states into the table (its changelog), then per readings partition the
   next offset they cover (a position key, after the states in the same ordered changelog
   partition), and only then may the agent ack the events. A crash anywhere before 5 replays
   the batch onto the old state, which recomputes the same rows and upserts them again: one
   row per (device, hour), never two. A new worker resumes each partition where the restored
   states end (their position), not at Kafka's committed offset, which can be ahead of them.

Step 5 is a checkpoint, taken at most every ``checkpoint_every_s``: between two, a batch writes
only the states whose history it changed (an hour closed, a birth; and a device's first state),
and keeps the rest, whose open hours alone moved, in memory until the next checkpoint writes
them with the positions. A crash in between resumes from the last checkpoint's positions and
replays what followed it: a state written ahead of them ignores the readings it already holds
(by offset), the others take them again, and the database's upserts make the same rows. Live
traffic touches most of the fleet every batch, so without this each reading cost a state
write on the changelog.

The table holds JSON, a small hot entry per device every batch and its history only when the
batch changed it (:mod:`stream.worker.statestore`). Parsed states are cached against the bytes
they stand for, so a state restored or changed underneath (a rebalance, another worker) is
parsed afresh. A failed batch drops what it touched (those objects were changed in place but
never written), and a revoked partition drops its devices.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from pydantic import ValidationError

from schema.device_messages import AnomalyLabel, DeviceBirth, DeviceStatus, Presence
from schema.results import Alert, Forecast, Health, HourlyAggregate
from schema.topics import KafkaTopics
from schema.wire import InvalidPayload, Reading, decode_reading
from stream.core.alerts import after_manual_resolution
from stream.core.horizon_records import Issue, Quantiles, TrajectoryRow, trajectory_records
from stream.core.hourclose import (
    DeviceState,
    ForecastRequest,
    HourOutputs,
    on_closed,
    record_forecast,
)
from stream.core.watermark import PartitionWatermarks
from stream.core.windowing import Applied, ClosedHour, DeviceWindows
from stream.dead_letter import dead_letter_record
from stream.worker.statestore import StateCache, is_cold_key

log = logging.getLogger(__name__)

_Message = TypeVar("_Message", DeviceBirth, DeviceStatus, AnomalyLabel)
_HISTORY_OUTCOMES = frozenset({Applied.LATE, Applied.TOO_LATE, Applied.DUPLICATE})


class Event(Protocol):
    """What the processor reads of a source event (an aiokafka record has all of it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """An :class:`Event` built by hand."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class SinkBatch:
    """Everything one batch writes to the database, in one transaction."""

    readings: list[Reading] = field(default_factory=list)
    births: list[DeviceBirth] = field(default_factory=list)
    statuses: list[tuple[DeviceStatus, datetime]] = field(default_factory=list)
    hourly: list[HourlyAggregate] = field(default_factory=list)
    forecasts: list[Forecast] = field(default_factory=list)
    horizons: list[TrajectoryRow] = field(default_factory=list)
    health: list[Health] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    labels: list[AnomalyLabel] = field(default_factory=list)
    """Ground truth of injected anomalies, stored as they come (to score the alerts with)."""
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """Next offset to read per (topic, partition), stored with the rows (see OffsetGuard)."""

    def row_counts(self) -> dict[str, int]:
        """Rows per table this batch writes (before the sink's per-key deduplication)."""
        return {
            "readings": len(self.readings),
            "devices": len(self.births),
            "device_status": len(self.statuses),
            "hourly": len(self.hourly),
            "forecasts": len(self.forecasts),
            "forecast_horizons": len(self.horizons),
            "health": len(self.health),
            "alerts": len(self.alerts),
        }


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one committed batch did, for the worker's metrics: counted once per batch (the
    per-event path only bumps an int on its rare branches: a restatement, a dead letter)."""

    events: int = 0
    hours_closed: int = 0
    """Hours closed by the watermark (a restated hour is not closed again)."""
    restatements: int = 0
    """Closed hours a late reading changed (each restated once more)."""
    forecasts: int = 0
    dead_letters: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    """Rows per table written in the batch's transaction."""
    states_written: int = 0
    """Device states the batch wrote to the table (every state kept back since the last
    checkpoint, when it took one)."""
    checkpoint: bool = False
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds of the batch per phase: applying the events, closing hours and forecasting,
    the database transaction, the result messages, the table writes."""


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    key: bytes
    value: bytes


class Sink(Protocol):
    async def write(self, batch: SinkBatch) -> frozenset[str]:
        """Store the batch in one transaction; answer the ids of its alerts a person resolved
        (their rows are left as the person left them)."""
        ...

    async def stored_offsets(self) -> dict[tuple[str, int], int]:
        """The offsets the last committed batches stored (see :class:`OffsetGuard`)."""
        ...


class OffsetGuard:
    """Keeps the processed offsets of the readings topic contiguous.

    Faust acknowledges the messages it skips during a rebalance, so Kafka's committed offset
    can run ahead of what was processed (faust-streaming issues #596/#606). The worker
    therefore stores the next offset per partition in the same database transaction as the
    batch's rows, and admits an event only if it is the next one expected (or an older one,
    which replays harmlessly). On a gap the agent seeks the partition back to the expected
    offset and drops the rest of that partition's events in the batch, unacknowledged.
    Only ``readings`` is checked: the compacted topics have legitimate offset gaps.
    """

    def __init__(self, checked_topic: str, stored: dict[tuple[str, int], int]) -> None:
        self._topic = checked_topic
        self._next = dict(stored)

    def split(self, events: Sequence[Event]) -> tuple[list[Event], dict[tuple[str, int], int]]:
        """(events to process, {(topic, partition): offset to seek back to})."""
        admitted: list[Event] = []
        rewind: dict[tuple[str, int], int] = {}
        expected = dict(self._next)
        for event in events:
            tp = (event.topic, event.partition)
            if tp in rewind:
                continue
            if event.topic == self._topic:
                want = expected.get(tp)
                if want is not None and event.offset > want:
                    rewind[tp] = want
                    continue
                expected[tp] = max(want or 0, event.offset + 1)
            admitted.append(event)
        return admitted, rewind

    def after(self, events: Sequence[Event]) -> dict[tuple[str, int], int]:
        """The next offsets of the partitions ``events`` touch, once they are stored."""
        moved: dict[tuple[str, int], int] = {}
        for event in events:
            tp = (event.topic, event.partition)
            if event.topic == self._topic:
                moved[tp] = max(self._next.get(tp, 0), moved.get(tp, 0), event.offset + 1)
        return moved

    def next_offset(self, tp: tuple[str, int]) -> int | None:
        """The next offset of ``tp`` to process, if known (stored or processed)."""
        return self._next.get(tp)

    def commit(self, moved: dict[tuple[str, int], int]) -> None:
        """Record stored offsets (from :meth:`after` once their batch is in the database)."""
        for tp, offset in moved.items():
            self._next[tp] = max(self._next.get(tp, 0), offset)


@dataclass(frozen=True, slots=True)
class ForecastBatch:
    """One batched model call's answer, in request order."""

    next_hour_kwh: Sequence[float]
    model_id: str
    hourly: Quantiles | None = None
    """Per request, (P10, P50, P90) of each hour of the trajectory (a multi-horizon model):
    shape (requests, hours, 3)."""
    daily: Quantiles | None = None
    """Per request, (P10, P50, P90) of each 24-hour block after the issue time."""


POSITION_PREFIX = "#next-offset:"
"""Keys of the state mapping that are no device (a device id never starts with ``#``): the next
readings offset the states of one partition cover, written after them in every batch."""


def position_key(partition: int) -> str:
    return f"{POSITION_PREFIX}{partition}"


def position_partition(key: str) -> int | None:
    """The partition a position key is about; ``None`` for a device id."""
    return int(key[len(POSITION_PREFIX) :]) if key.startswith(POSITION_PREFIX) else None


class Forecasts(Protocol):
    @property
    def history_hours(self) -> int: ...

    def supports(self, kind: str) -> bool:
        """Whether the served model knows this device type."""
        ...

    async def forecast(self, requests: Sequence[ForecastRequest]) -> ForecastBatch:
        """Next-hour kWh per request (and the horizons, if the model has them), in one batched
        model call, and the model id."""
        ...


class Publisher(Protocol):
    async def publish(self, messages: Sequence[OutMessage]) -> None:
        """Send and wait until Kafka acknowledged every message."""
        ...


@dataclass(slots=True)
class _Batch:
    """What one call of :meth:`EventProcessor.process` accumulates."""

    now: datetime
    dirty: dict[str, DeviceState] = field(default_factory=dict)
    sink: SinkBatch = field(default_factory=SinkBatch)
    outputs: HourOutputs = field(default_factory=HourOutputs)
    messages: list[OutMessage] = field(default_factory=list)
    cold: set[str] = field(default_factory=set)
    """Devices whose history (the state's cold part) the batch changed."""
    restatements: int = 0
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    lateness: timedelta
    max_silent: timedelta
    checkpoint_every_s: float = 0.0
    """How often the states a batch changed only the open hours of, and the partitions'
    positions, are written to the table (see the module doc); 0: every batch."""


class EventProcessor:
    """Applies batches of events; owns the in-memory watermarks and partition index."""

    def __init__(
        self,
        *,
        topics: KafkaTopics,
        states: MutableMapping[str, bytes],
        sink: Sink,
        forecasts: Forecasts,
        publisher: Publisher,
        settings: ProcessorSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topics = topics
        self._states = states
        self._cache = StateCache(states)
        self._touched: set[str] = set()
        self._sink, self._forecasts, self._publisher = sink, forecasts, publisher
        self._settings = settings
        self._clock, self._monotonic = clock, monotonic
        self._watermarks = PartitionWatermarks(settings.lateness)
        self._devices: defaultdict[int, set[str]] = defaultdict(set)
        self._indexed = False
        self._guard: OffsetGuard | None = None
        self._pending: dict[str, DeviceState] = {}
        """States changed since the last checkpoint and not written yet (in the cache too)."""
        self._unpositioned: dict[int, int] = {}
        """Per readings partition, the next offset processed since the last checkpoint."""
        self._checkpointed: float | None = None
        self.report = BatchReport()
        """What the last committed batch did (see :class:`BatchReport`)."""

    def _index_existing(self) -> dict[tuple[str, int], int]:
        """After a (re)start, learn which devices the restored table holds, per partition, and
        return how far the restored states go (see :meth:`_state_position`), in one pass."""
        positions = {}
        for key in list(self._states):
            if is_cold_key(key):
                continue
            partition = position_partition(key)
            if partition is not None:
                positions[(self._topics.readings, partition)] = int(self._states[key])
                continue
            state = self._cache.get(key)
            if state is None:
                continue
            partition = state.windows.partition
            self._devices[partition].add(key)
            if state.windows.last_event_ts is not None:
                self._watermarks.observe(partition, state.windows.last_event_ts)
        self._indexed = True
        return positions

    def _state_position(self, partition: int) -> int | None:
        """The next readings offset the restored states of ``partition`` cover.

        Each batch writes its device states, then its position key, to the table's changelog
        in one ordered stream per partition, so a restored position never runs ahead of the
        restored states. Kafka's committed offset can (Faust acknowledges what it skips, and
        a kill can land between the changelog and the commit): the worker resumes from here.
        """
        raw = self._states.get(position_key(partition))
        return None if raw is None else int(raw)

    def _load(self, dirty: dict[str, DeviceState], device_id: str) -> DeviceState | None:
        if device_id in dirty:
            return dirty[device_id]
        state = self._cache.get(device_id)
        if state is not None:
            self._touched.add(device_id)  # may be changed in place from here on
        return state

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions revoked in a rebalance: drop their parsed states and watermark index."""
        gone = set(partitions)
        self._cache.forget_partitions(gone)
        for partition in gone:
            self._devices.pop(partition, None)
            self._unpositioned.pop(partition, None)
        for device_id in [d for d, s in self._pending.items() if s.windows.partition in gone]:
            del self._pending[device_id]  # its new owner replays it from the checkpoint
        self._indexed = False  # re-learn from the table what it holds after the rebalance

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The next offset of a readings partition to process (``None``: none seen yet)."""
        return None if self._guard is None else self._guard.next_offset((topic, partition))

    async def process(self, events: Sequence[Event]) -> dict[tuple[str, int], int]:
        """Apply a batch; return the partitions to seek back to (their events were not
        processed and must not be acknowledged). On any failure the in-memory watermarks are
        as before the call and the device states untouched: the batch can be replayed."""
        if not self._indexed:
            positions = self._index_existing()
            # After a (re)start or a rebalance, each partition resumes where its restored
            # states end, else (no position written yet) where the database's rows end.
            stored = await self._sink.stored_offsets()
            self._guard = OffsetGuard(self._topics.readings, {**stored, **positions})
        assert self._guard is not None
        admitted, rewind = self._guard.split(events)
        if rewind:  # another worker may have moved on meanwhile: ask the restored states
            moved = {tp: self._state_position(tp[1]) for tp in rewind}
            self._guard.commit({tp: offset for tp, offset in moved.items() if offset is not None})
            admitted, rewind = self._guard.split(events)
        if rewind:
            log.warning("offset gap (events skipped upstream); seeking back to %s", rewind)
        snapshot = self._watermarks.snapshot()
        self._touched.clear()
        try:
            await self._process(admitted, self._guard)
        except BaseException:
            self._watermarks.restore(snapshot)
            # Parsed states this batch changed in place were never written: parse them again.
            self._cache.discard(self._touched)
            if self._pending or self._unpositioned:
                self._back_to_checkpoint()
            raise
        return rewind

    def _back_to_checkpoint(self) -> None:
        """Forget what was processed since the last checkpoint (it is in no table yet): the
        next batch starts over from the positions in the table, as a restarted worker would."""
        self._cache.discard(self._pending)
        self._pending.clear()
        self._unpositioned.clear()
        self._watermarks = PartitionWatermarks(self._settings.lateness)
        self._indexed = False

    async def _process(self, events: Sequence[Event], guard: OffsetGuard) -> None:
        batch = _Batch(now=self._clock())
        clock = time.perf_counter
        started = clock()
        touched: set[int] = set()
        for event in events:
            if event.topic == self._topics.readings:
                self._on_reading(event, batch)
                touched.add(event.partition)
            elif event.topic == self._topics.device_birth:
                self._on_birth(event, batch)
            elif event.topic == self._topics.device_status:
                self._on_status(event, batch)
            elif event.topic == self._topics.anomaly_labels:
                self._on_label(event, batch)
        closing = [c for partition in touched for c in self._close_due(partition, batch)]
        applied = clock()
        await self._forecast(batch.outputs.requests, batch)  # restatements' re-forecasts
        batch.outputs.requests = []
        for round_ in range(max((len(hours) for _, hours in closing), default=0)):
            requests: list[ForecastRequest] = []
            for state, hours in closing:
                if round_ < len(hours):
                    requests += self._closed(state, hours[round_], batch)
            await self._forecast(requests, batch)
        rows = batch.sink
        rows.hourly, rows.health, rows.alerts = (
            batch.outputs.hourly,
            batch.outputs.health,
            batch.outputs.alerts,
        )
        rows.offsets = guard.after(events)
        closed = clock()
        resolved_by_person = await self._sink.write(rows)
        guard.commit(rows.offsets)
        if resolved_by_person:
            await self._continue_resolved(resolved_by_person, batch)
        stored = clock()
        await self._publisher.publish([*batch.messages, *self._result_messages(rows)])
        published = clock()
        moved = {p: o for (t, p), o in rows.offsets.items() if t == self._topics.readings}
        checkpoint = self._checkpoint_due(moved)
        written = self._write_states(batch, moved, checkpoint=checkpoint)
        phases = {
            "apply": applied - started,
            "close_and_forecast": closed - applied,
            "database": stored - closed,
            "publish": published - stored,
            "states": clock() - published,
        }
        self.report = BatchReport(
            events=len(events),
            hours_closed=sum(len(hours) for _, hours in closing),
            restatements=batch.restatements,
            forecasts=len(rows.forecasts),
            dead_letters=batch.dead_letters,
            rows=rows.row_counts(),
            states_written=written,
            checkpoint=checkpoint,
            phases=phases,
        )

    def _write_states(self, batch: _Batch, moved: dict[int, int], *, checkpoint: bool) -> int:
        """Write the states the batch changed the history of (or a device's first), keep the
        others back unless this is a checkpoint; answer how many states were written."""
        written = 0
        for device_id, state in batch.dirty.items():
            if checkpoint or device_id in batch.cold or not self._cache.holds(device_id):
                self._cache.put(device_id, state, cold_changed=device_id in batch.cold)
                self._pending.pop(device_id, None)
                written += 1
            else:
                self._pending[device_id] = state
        self._unpositioned |= moved
        if checkpoint:
            written += len(self._pending)
            self._checkpoint()
        return written

    def _checkpoint_due(self, moved: dict[int, int]) -> bool:
        every = self._settings.checkpoint_every_s
        if every <= 0 or self._checkpointed is None:
            return True
        # A partition without a position would resume at the database's offsets, which run
        # ahead of any state kept back: its first batch is a checkpoint.
        if any(self._state_position(partition) is None for partition in moved):
            return True
        return self._monotonic() - self._checkpointed >= every

    def _checkpoint(self) -> None:
        """Write every state kept back, then each partition's position (after its states on the
        same ordered changelog partition: a restored position never claims a state that was
        not written)."""
        for device_id, state in self._pending.items():
            self._cache.put(device_id, state, cold_changed=False)
        self._pending.clear()
        for partition, offset in self._unpositioned.items():
            self._states[position_key(partition)] = str(offset).encode()
        self._unpositioned.clear()
        self._checkpointed = self._monotonic()

    async def _continue_resolved(self, resolved: frozenset[str], batch: _Batch) -> None:
        """A person resolved some of the alerts the batch updated: the worker never writes
        those again. Where the condition still holds, a new alert opens in their place
        (:func:`stream.core.alerts.after_manual_resolution`), stored before the states are."""
        rows = batch.sink
        reopened: list[Alert] = []
        for device_id in {a.device_id for a in rows.alerts if a.alert_id in resolved}:
            state = batch.dirty[device_id]
            batch.cold.add(device_id)  # its open alerts change
            reopened += after_manual_resolution(state.alerts, resolved, now=batch.now)
        if reopened:
            await self._sink.write(SinkBatch(alerts=reopened))
        rows.alerts = [a for a in rows.alerts if a.alert_id not in resolved] + reopened

    def _close_due(
        self, partition: int, batch: _Batch
    ) -> list[tuple[DeviceState, list[ClosedHour]]]:
        mark = self._watermarks.due(partition)
        if mark is None:
            return []
        closing = []
        for device_id in self._devices[partition]:
            state = self._load(batch.dirty, device_id)
            if state is None:
                continue  # the partition moved to another worker
            closed = state.windows.close_due(mark, self._settings.max_silent)
            if closed:
                batch.dirty[device_id] = state
                batch.cold.add(device_id)
                closing.append((state, closed))
        return closing

    def _closed(self, state: DeviceState, hour: ClosedHour, batch: _Batch) -> list[ForecastRequest]:
        """Record one closed hour's rows; return its forecast requests."""
        history = self._forecasts.history_hours
        out = on_closed(state, hour, now=batch.now, history_hours=history)
        requests, out.requests = out.requests, []
        batch.outputs.extend(out)
        return requests

    async def _forecast(self, requests: list[ForecastRequest], batch: _Batch) -> None:
        wanted = [r for r in requests if self._forecasts.supports(r.kind)]
        if len(wanted) < len(requests):
            log.debug("%d devices of unknown type get no forecast", len(requests) - len(wanted))
        if not wanted:
            return
        answer = await self._forecasts.forecast(wanted)
        model_id = answer.model_id
        for request, kwh in zip(wanted, answer.next_hour_kwh, strict=True):
            state = batch.dirty[request.device_id]
            batch.cold.add(request.device_id)
            batch.sink.forecasts.append(record_forecast(state, request, kwh, model_id, batch.now))
        if answer.hourly is None:
            return
        issues = [Issue(r.device_id, r.tz, r.target) for r in wanted]
        batch.sink.horizons += trajectory_records(
            issues, answer.hourly, answer.daily, model_id=model_id, now=batch.now
        )

    def _state_for(self, batch: _Batch, device_id: str, tz: str, partition: int) -> DeviceState:
        state = self._load(batch.dirty, device_id)
        if state is None:
            state = DeviceState(
                windows=DeviceWindows(device_id=device_id, tz=tz, partition=partition)
            )
        self._devices[partition].add(device_id)
        batch.dirty[device_id] = state
        return state

    def _dead_letter(self, event: Event, reason: str, detail: str, batch: _Batch) -> None:
        log.warning("dead-lettering %s@%d: %s: %s", event.topic, event.offset, reason, detail)
        batch.dead_letters += 1
        record = dead_letter_record(
            topic=f"kafka:{event.topic}",
            payload=event.value or b"",
            reason=reason,
            detail=detail,
            at=batch.now,
        )
        batch.messages.append(OutMessage(self._topics.readings_dlq, event.key or b"", record))

    def _on_reading(self, event: Event, batch: _Batch) -> None:
        try:
            reading = decode_reading(event.value or b"")
        except InvalidPayload as exc:
            self._dead_letter(event, exc.reason, exc.detail, batch)
            return
        state = self._state_for(batch, reading.device_id, reading.tz, event.partition)
        result = state.windows.apply(reading, event.offset)
        if result.outcome is Applied.REPLAYED:
            return
        if result.outcome in _HISTORY_OUTCOMES:
            batch.cold.add(reading.device_id)  # may have changed a closed hour
        state.last_arrival = batch.now
        batch.sink.readings.append(reading)
        self._watermarks.observe(event.partition, reading.ts_utc)
        if result.outcome in {Applied.LATE, Applied.TOO_LATE}:
            late = OutMessage(self._topics.readings_late, event.key or b"", event.value or b"")
            batch.messages.append(late)
        if result.restated is not None:
            batch.restatements += 1
            batch.outputs.requests += self._closed(state, result.restated, batch)

    def _decode(
        self, model: type[_Message], event: Event, reason: str, batch: _Batch
    ) -> _Message | None:
        """The event's value as ``model``, or None after dead-lettering it with ``reason``."""
        try:
            return model.model_validate_json(event.value or b"")
        except ValidationError as exc:
            self._dead_letter(event, reason, str(exc.errors()[0]["msg"]), batch)
            return None

    def _on_birth(self, event: Event, batch: _Batch) -> None:
        birth = self._decode(DeviceBirth, event, "invalid_birth", batch)
        if birth is None:
            return
        state = self._state_for(batch, birth.device_id, birth.tz, event.partition)
        state.kind = birth.kind
        batch.cold.add(birth.device_id)
        batch.sink.births.append(birth)

    def _on_status(self, event: Event, batch: _Batch) -> None:
        status = self._decode(DeviceStatus, event, "invalid_status", batch)
        if status is None:
            return
        existing = self._load(batch.dirty, status.device_id)
        if existing is not None:
            existing.online = status.status is Presence.ONLINE
            batch.dirty[status.device_id] = existing
            batch.cold.add(status.device_id)
        batch.sink.statuses.append((status, status.ts or batch.now))

    def _on_label(self, event: Event, batch: _Batch) -> None:
        label = self._decode(AnomalyLabel, event, "invalid_label", batch)
        if label is not None:
            batch.sink.labels.append(label)

    def _result_messages(self, batch: SinkBatch) -> list[OutMessage]:
        t = self._topics
        rows: list[tuple[str, HourlyAggregate | Forecast | Health | Alert]] = [
            *((t.hourly, r) for r in batch.hourly),
            *((t.forecasts, r) for r in batch.forecasts),
            *((t.health, r) for r in batch.health),
            *((t.alerts, r) for r in batch.alerts),
        ]
        return [
            OutMessage(topic, row.device_id.encode(), row.model_dump_json().encode())
            for topic, row in rows
        ]
