"""The worker's batch processing without Kafka or PostgreSQL: a dict for the Faust table and
recording stand-ins for the sink, the model and the producer (pure orchestration; the real
services are exercised by the integration and e2e tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schema.device_messages import DeviceBirth, DeviceStatus, Location, Presence
from schema.topics import KafkaTopics
from schema.wire import Energy, Power, Reading
from stream.core.horizon_records import targets
from stream.core.hourclose import DeviceState, ForecastRequest
from stream.core.localtime import local_hour
from stream.core.windowing import DeviceWindows
from stream.worker.processor import (
    EventProcessor,
    ForecastBatch,
    OutMessage,
    ProcessorSettings,
    SinkBatch,
    SourceEvent,
)
from stream.worker.statestore import StateCache

pytestmark = pytest.mark.unit

TOPICS = KafkaTopics("t")
T0 = datetime(2026, 6, 1, tzinfo=UTC)


class TableSink:
    """Keeps rows the way the database's keys would: one per primary key."""

    def __init__(self) -> None:
        self.readings: dict[tuple[str, datetime], Reading] = {}
        self.hourly: dict[tuple[str, datetime], object] = {}
        self.forecasts: dict[tuple[str, datetime, str], float] = {}
        self.health: dict[tuple[str, datetime], object] = {}
        self.fail_next = False
        self.offsets: dict[tuple[str, int], int] = {}

    async def stored_offsets(self) -> dict[tuple[str, int], int]:
        return dict(self.offsets)

    async def write(self, batch: SinkBatch) -> frozenset[str]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database went away")
        for r in batch.readings:
            self.readings.setdefault((r.device_id, r.ts_utc), r)
        for tp, offset in batch.offsets.items():
            self.offsets[tp] = max(self.offsets.get(tp, 0), offset)
        for h in batch.hourly:
            self.hourly[(h.device_id, h.hour_start)] = h
        for f in batch.forecasts:
            self.forecasts[(f.device_id, f.hour_start, f.model_id)] = f.predicted_kwh
        for x in batch.health:
            self.health[(x.device_id, x.hour_start)] = x
        return frozenset()


class Persistence:
    history_hours = 24

    def supports(self, kind: str) -> bool:
        return kind == "household_meter"

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def forecast(self, requests: Sequence[ForecastRequest]) -> ForecastBatch:
        self.calls.append(len(requests))
        return ForecastBatch([r.history_kwh[-1] for r in requests], "persistence")


class Outbox:
    def __init__(self) -> None:
        self.messages: list[OutMessage] = []

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        self.messages += messages


def reading_event(device: str, seq: int, at: datetime, offset: int, tz: str = "UTC") -> SourceEvent:
    r = Reading(
        device_id=device,
        seq=seq,
        ts=at.astimezone(ZoneInfo(tz)),
        tz=tz,
        interval_s=900,
        energy=Energy(value=0.25 + 0.01 * at.hour),
        power=Power(value=1.0),
    )
    return SourceEvent(TOPICS.readings, 0, offset, device.encode(), r.to_json())


def birth_event(device: str, offset: int, tz: str = "UTC") -> SourceEvent:
    b = DeviceBirth(
        device_id=device,
        kind="household_meter",
        tz=tz,
        location=Location(latitude=0, longitude=0),
        nominal_kw=2.0,
        firmware="1.0",
        interval_s=900,
        ts=T0,
    )
    return SourceEvent(
        TOPICS.device_birth, 0, offset, device.encode(), b.model_dump_json().encode()
    )


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(
    states: dict[str, bytes],
    sink: TableSink,
    *,
    checkpoint_every_s: float = 0.0,
    ticks: Ticks | None = None,
) -> tuple[EventProcessor, Persistence, Outbox]:
    model, outbox = Persistence(), Outbox()
    processor = EventProcessor(
        topics=TOPICS,
        states=states,
        sink=sink,
        forecasts=model,
        publisher=outbox,
        settings=ProcessorSettings(
            lateness=timedelta(minutes=5),
            max_silent=timedelta(hours=3),
            checkpoint_every_s=checkpoint_every_s,
        ),
        clock=lambda: T0 + timedelta(days=10),
        monotonic=ticks or Ticks(),
    )
    return processor, model, outbox


def fleet_events(devices: list[tuple[str, str]], hours: int) -> list[SourceEvent]:
    events = [birth_event(d, i, tz) for i, (d, tz) in enumerate(devices)]
    offset = len(events)
    for q in range(hours * 4):
        for d, tz in devices:
            events.append(reading_event(d, q, T0 + timedelta(minutes=15 * q), offset, tz))
            offset += 1
    return events


def chunks(events: list[SourceEvent], size: int) -> list[list[SourceEvent]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


async def test_one_row_per_device_hour_and_batched_forecasts() -> None:
    devices = [("a", "UTC"), ("b", "Asia/Kolkata"), ("c", "Asia/Kathmandu")]
    sink, states = TableSink(), {}
    processor, model, outbox = make(states, sink)
    for batch in chunks(fleet_events(devices, 30), 50):
        await processor.process(batch)
    assert len(sink.readings) == 3 * 30 * 4
    per_device = {d: sorted(h for dev, h in sink.hourly if dev == d) for d, _ in devices}
    assert len(per_device["a"]) == 29  # the last hour is still open
    assert all(h.minute == 30 for h in per_device["b"])
    assert all(h.minute == 15 for h in per_device["c"])
    # Forecasts once 24 hours are closed, all devices of a close burst in one model call.
    assert sink.forecasts
    assert max(model.calls) >= 2
    assert {m.topic for m in outbox.messages} >= {TOPICS.hourly, TOPICS.forecasts, TOPICS.health}


async def test_a_failed_write_replayed_gives_the_same_rows_and_no_duplicates() -> None:
    devices = [("a", "Europe/Berlin"), ("b", "Australia/Lord_Howe")]
    events = fleet_events(devices, 30)
    clean_sink = TableSink()
    clean, _, _ = make({}, clean_sink)
    for batch in chunks(events, 40):
        await clean.process(batch)

    sink, states = TableSink(), {}
    crashing, _, _ = make(states, sink)
    for i, batch in enumerate(chunks(events, 40)):
        if i % 3 == 1:
            sink.fail_next = True
            with pytest.raises(ConnectionError):
                await crashing.process(batch)
        await crashing.process(batch)  # the replay after the failure (or the first try)
    assert sink.readings.keys() == clean_sink.readings.keys()
    assert sink.hourly == clean_sink.hourly
    assert sink.forecasts == clean_sink.forecasts


async def test_restart_from_the_table_replays_nothing_twice() -> None:
    devices = [("a", "UTC")]
    events = fleet_events(devices, 30)
    sink, states = TableSink(), {}
    first, _, _ = make(states, sink)
    for batch in chunks(events[:60], 20):
        await first.process(batch)
    # A new worker restores the table and gets the uncommitted tail, with some overlap.
    second, _, _ = make(states, sink)
    for batch in chunks(events[40:], 20):
        await second.process(batch)
    hourly = sorted(sink.hourly.items())
    assert len(hourly) == 29
    assert all(h.duplicate_count == 0 and h.reading_count == 4 for _, h in hourly)  # type: ignore[attr-defined]


async def test_invalid_records_are_dead_lettered() -> None:
    sink = TableSink()
    processor, _, outbox = make({}, sink)
    await processor.process([SourceEvent(TOPICS.readings, 0, 0, b"x", b"{not json")])
    (dead,) = outbox.messages
    assert dead.topic == TOPICS.readings_dlq
    assert b"malformed_json" in dead.value


async def test_each_batch_reports_what_it_did() -> None:
    """The worker's metrics come from these reports: events, hours closed, restatements,
    forecasts, dead letters and rows per table, per batch."""
    devices = [("a", "UTC"), ("b", "UTC")]
    events = fleet_events(devices, 30)
    # Hold back device a's reading of 01:15: it arrives after hour 01:00 closed (a restatement).
    late = next(e for e in events if e.key == b"a" and b'"seq":5,' in e.value)
    events.remove(late)
    events += [late, SourceEvent(TOPICS.readings, 0, 0, b"b", b"{not json")]
    first = next(e.offset for e in events if e.topic == TOPICS.readings)
    events = [  # offsets contiguous again, in the new order
        e if e.topic != TOPICS.readings else SourceEvent(e.topic, 0, first + i, e.key, e.value)
        for i, e in enumerate(events, start=-len(devices))
    ]
    sink = TableSink()
    processor, _, _ = make({}, sink)
    reports = []
    for batch in [*chunks(events[:-2], 40), events[-2:]]:
        await processor.process(batch)
        reports.append(processor.report)
    assert reports[-1].events == 2
    assert (reports[-1].restatements, reports[-1].dead_letters) == (1, 1)
    assert reports[-1].rows["readings"] == 1
    assert reports[-1].rows["hourly"] == 1  # the restated hour, again
    assert sum(r.events for r in reports) == len(events)
    assert sum(r.hours_closed for r in reports) == len(sink.hourly) == 2 * 29
    assert sum(r.rows["readings"] for r in reports) == len(sink.readings) == 2 * 30 * 4
    assert sum(r.forecasts for r in reports) >= len(sink.forecasts) > 0
    assert sum(r.restatements for r in reports) == 1


async def test_a_gap_in_offsets_is_sought_back_and_nothing_after_it_is_processed() -> None:
    sink = TableSink()
    processor, _, _ = make({}, sink)
    events = [reading_event("a", k, T0 + timedelta(minutes=15 * k), offset=k) for k in range(10)]
    assert await processor.process(events[:4]) == {}
    assert sink.offsets == {(TOPICS.readings, 0): 4}
    # Offsets 4 and 5 were skipped upstream (acked by Faust during a rebalance).
    rewind = await processor.process(events[6:])
    assert rewind == {(TOPICS.readings, 0): 4}
    assert len(sink.readings) == 4
    # The partition is re-read from offset 4; older copies replay harmlessly.
    assert await processor.process(events[2:]) == {}
    assert len(sink.readings) == 10
    assert sink.offsets == {(TOPICS.readings, 0): 10}


async def test_a_new_worker_starts_from_the_offsets_stored_with_the_rows() -> None:
    sink = TableSink()
    first, _, _ = make({}, sink)
    events = [reading_event("a", k, T0 + timedelta(minutes=15 * k), offset=k) for k in range(8)]
    await first.process(events[:5])
    # Kafka's committed offset ran ahead to 7: the new worker is handed offset 7 first.
    second, _, _ = make({}, sink)
    assert await second.process(events[7:]) == {(TOPICS.readings, 0): 5}
    assert await second.process(events[5:]) == {}
    assert len(sink.readings) == 8


async def test_a_worker_resumes_where_the_restored_states_end_not_at_kafkas_commit() -> None:
    """The kill -9 case: the database has a batch the changelog lost, and Kafka's committed
    offset lies between (Faust acknowledged what it skipped). Resuming from the commit would
    apply the rest of an hour to a state without its start (an hourly row short of readings);
    the states' own position sends the partition back to where they end."""
    devices = [("a", "UTC"), ("b", "Asia/Kolkata")]
    events = fleet_events(devices, 6)
    sink, states = TableSink(), {}
    first, _, _ = make(states, sink)
    await first.process(events[:12])
    restored = dict(states)  # what the changelog holds when the worker dies
    await first.process(events[12:30])  # in the database, never on the changelog
    assert sink.offsets == {(TOPICS.readings, 0): 30}
    second, _, _ = make(restored, sink)
    assert await second.process(events[21:]) == {(TOPICS.readings, 0): 12}
    assert await second.process(events[12:]) == {}
    assert sink.offsets == {(TOPICS.readings, 0): len(events)}
    stored: dict[tuple[str, datetime], int] = {}
    for r in sink.readings.values():
        key = (r.device_id, local_hour(r.ts_utc, r.tz).start)
        stored[key] = stored.get(key, 0) + 1
    assert sink.hourly
    for key, row in sink.hourly.items():
        assert row.reading_count == stored[key], key  # type: ignore[attr-defined]


# ------------------------------------------------------------------- parsed-state cache
def hourly_counts(sink: TableSink, device: str) -> dict[datetime, int]:
    return {h: row.reading_count for (d, h), row in sink.hourly.items() if d == device}  # type: ignore[attr-defined]


async def test_a_state_changed_underneath_is_parsed_again_not_reused() -> None:
    """A rebalance hands the partition to another worker and back: the table then holds a
    state this worker never wrote, and its parsed copy must not be reused."""
    events = fleet_events([("a", "UTC")], 6)
    sink, states = TableSink(), {}
    first, _, _ = make(states, sink)
    other, _, _ = make(states, sink)
    await first.process(events[:5])  # birth + 10:00-ish quarters 0..3 (hour 0 complete)
    await other.process(events[5:9])  # hour 1, by the other worker
    await first.process(events[9:])  # back to the first: it must build on the other's state
    counts = hourly_counts(sink, "a")
    assert list(counts.values()) == [4] * 5  # every closed hour whole: nothing lost or doubled
    assert all(row.duplicate_count == 0 for row in sink.hourly.values())  # type: ignore[attr-defined]


async def test_a_failed_batch_does_not_leave_its_changes_in_the_cache() -> None:
    events = fleet_events([("a", "UTC")], 6)
    sink, states = TableSink(), {}
    processor, _, _ = make(states, sink)
    await processor.process(events[:5])
    written = dict(states)
    sink.fail_next = True
    with pytest.raises(ConnectionError):
        await processor.process(events[5:9])
    assert states == written  # the table is as before the failed batch
    await processor.process(events[5:9])  # the replay
    await processor.process(events[9:])
    assert list(hourly_counts(sink, "a").values()) == [4] * 5


def test_the_cache_follows_the_table() -> None:
    states: dict[str, bytes] = {}
    cache = StateCache(states)
    assert cache.get("a") is None
    state = DeviceState(windows=DeviceWindows(device_id="a", tz="UTC", partition=2))
    cache.put("a", state)
    assert StateCache(dict(states)).get("a") == state  # what a restarted worker reads
    assert cache.get("a") is state  # reused while the table holds what was written
    changed = state.model_copy(update={"kind": "fridge"}, deep=True)
    other = StateCache(states)  # another worker (a rebalance there and back, say)
    assert other.get("a") == state
    other.put("a", changed)
    fresh = cache.get("a")
    assert fresh is not state and fresh == changed
    assert cache.get("a") is fresh
    cache.put("b", DeviceState(windows=DeviceWindows(device_id="b", tz="UTC", partition=3)))
    cache.forget_partitions({2})
    assert len(cache) == 1
    assert cache.get("a") == changed  # parsed again from the table
    del states["a"]
    assert cache.get("a") is None
    cache.discard(["b"])
    assert len(cache) == 0


async def test_a_worker_restarted_after_every_batch_writes_what_one_worker_writes() -> None:
    """Each batch writes a device's history (the cold part of its state) only if it changed
    it: a state read back from the table after any batch must be the whole state, or the
    restarted worker's rows (hours, forecasts, health, alerts) would differ."""
    devices = [("a", "Europe/Berlin"), ("b", "Asia/Kathmandu"), ("c", "Australia/Lord_Howe")]
    events = fleet_events(devices, 30)
    split = 3 + 26 * 4 * len(devices)  # after hour 26: a batch of births and statuses alone
    rebirth = birth_event("a", 3).value.replace(b"household_meter", b"fridge")  # no forecasts
    status = DeviceStatus(device_id="b", status=Presence.OFFLINE, ts=T0 + timedelta(hours=26))
    news = [
        SourceEvent(TOPICS.device_birth, 0, 3, b"a", rebirth),
        SourceEvent(TOPICS.device_status, 0, 0, b"b", status.model_dump_json().encode()),
    ]
    offset, late = len(events), []
    for k, (device, tz) in enumerate(devices):  # then late readings and duplicates, alone
        late.append(
            reading_event(device, 10_000 + k, T0 + timedelta(hours=20, minutes=7), offset, tz)
        )
        late.append(reading_event(device, 4 * 25, T0 + timedelta(minutes=15 * 100), offset + 1, tz))
        offset += 2
    resent = [  # the late ones again (a QoS 1 redelivery): duplicates if the history kept them
        SourceEvent(e.topic, e.partition, e.offset + len(late), e.key, e.value) for e in late
    ]
    batches = [*chunks(events[:split], 37), news, *chunks(events[split:], 37), late, resent]
    clean_sink = TableSink()
    clean, _, clean_out = make({}, clean_sink)
    sink, states = TableSink(), {}
    restarted_out: list[OutMessage] = []
    for batch in batches:
        await clean.process(batch)
        worker, _, outbox = make(states, sink)  # restored from the table every time
        await worker.process(batch)
        restarted_out += outbox.messages
    assert sink.hourly == clean_sink.hourly
    assert sink.forecasts == clean_sink.forecasts
    assert sink.health == clean_sink.health
    assert [m.value for m in restarted_out] == [m.value for m in clean_out.messages]
    assert any(h.revision > 0 for h in sink.hourly.values())  # type: ignore[attr-defined]


class SeasonalTrajectory(Persistence):
    """A multi-horizon stand-in: every hour of the trajectory is the last hour, +-10 %."""

    async def forecast(self, requests: Sequence[ForecastRequest]) -> ForecastBatch:
        self.calls.append(len(requests))
        last = [r.history_kwh[-1] for r in requests]
        return ForecastBatch(
            last,
            "trajectory",
            hourly=[[(v * 0.9, v, v * 1.1)] * 24 for v in last],
            daily=[[(v * 21.6, v * 24, v * 26.4)] * 7 for v in last],
        )


async def test_a_multi_horizon_model_writes_trajectories_and_days_at_local_midnight() -> None:
    devices = [("a", "UTC"), ("k", "Asia/Kathmandu")]
    written: list[SinkBatch] = []

    class Recording(TableSink):
        async def write(self, batch: SinkBatch) -> frozenset[str]:
            written.append(batch)
            return await super().write(batch)

    sink, model = Recording(), SeasonalTrajectory()
    processor = EventProcessor(
        topics=TOPICS, states={}, sink=sink, forecasts=model, publisher=Outbox(),
        settings=ProcessorSettings(lateness=timedelta(minutes=5), max_silent=timedelta(hours=3)),
        clock=lambda: T0 + timedelta(days=10),
    )  # fmt: skip
    for batch in chunks(fleet_events(devices, 50), 60):
        await processor.process(batch)
    rows = [row for batch in written for row in batch.horizons]
    hourly = [r for r in rows if r.horizon == "24h"]
    daily = [r for r in rows if r.horizon == "7d"]
    issues = {(r.device_id, r.issue_time) for r in hourly}
    # Every forecast of a device-local hour comes with its 24-hour trajectory, one model call.
    assert len(hourly) == len(issues) == len(sink.forecasts)
    assert all(len(targets(r)) == 24 for r in hourly)
    assert all(t.p10_kwh <= t.p50_kwh <= t.p90_kwh for r in rows for t in targets(r))
    # The daily totals only at each local midnight with a forecast: 00:00 and 18:15 UTC.
    assert {(r.device_id, r.issue_time) for r in daily} == {
        ("a", T0 + timedelta(days=1)),
        ("a", T0 + timedelta(days=2)),
        ("k", datetime(2026, 6, 2, 18, 15, tzinfo=UTC)),  # after 24 closed hours
    }
    assert all(r.local_hours is None and len(targets(r)) == 7 for r in daily)


# ------------------------------------------------------------------- checkpoints
POSITION = b"#next-offset:0"


async def test_between_checkpoints_only_changed_histories_are_written() -> None:
    """Live traffic moves the open hour of most of the fleet every batch: those states wait
    for the checkpoint; a closed hour's state and a new device's are written by their batch."""
    devices = [("a", "UTC"), ("b", "UTC")]
    events = fleet_events(devices, 3)  # births, then quarter q of device d at 2 + 2q + d
    sink, states, ticks = TableSink(), {}, Ticks()
    processor, _, _ = make(states, sink, checkpoint_every_s=5, ticks=ticks)
    await processor.process(events[:4])  # births, quarter 0: the first batch is a checkpoint
    assert processor.report.checkpoint and processor.report.states_written == 2
    assert states[POSITION.decode()] == b"4"
    written = dict(states)
    await processor.process(events[4:12])  # 00:15 to 01:00: open hours only
    assert not processor.report.checkpoint and processor.report.states_written == 0
    assert states == written  # nothing on the changelog
    assert len(sink.readings) == 10  # but in the database
    await processor.process(events[12:14])  # 01:15: hour 0 closes for both (5 min lateness)
    assert processor.report.hours_closed == 2 and processor.report.states_written == 2
    assert states["a"] != written["a"] and states[POSITION.decode()] == b"4"  # no position yet
    await processor.process(events[14:16])
    assert processor.report.states_written == 0
    ticks.now = 5.0
    await processor.process(events[16:18])  # due: every state kept back, then the position
    assert processor.report.checkpoint and processor.report.states_written == 2
    assert states[POSITION.decode()] == b"18"


async def test_a_crash_between_checkpoints_replays_from_the_last_one_and_writes_the_same() -> None:
    """kill -9 between checkpoints: the changelog holds the last checkpoint (and the histories
    written since), the database more; the next worker goes back to the checkpoint's position
    and ends with the rows of a worker that never stopped."""
    devices = [("a", "Europe/Berlin"), ("b", "Asia/Kathmandu"), ("c", "Australia/Lord_Howe")]
    events = fleet_events(devices, 12)
    clean_sink = TableSink()
    clean, _, _ = make({}, clean_sink)
    for batch in chunks(events, 10):
        await clean.process(batch)

    sink, states, ticks = TableSink(), {}, Ticks()
    first, _, _ = make(states, sink, checkpoint_every_s=5, ticks=ticks)
    batches = chunks(events, 10)
    for k, batch in enumerate(batches[:9]):
        ticks.now = 2.0 * k  # a checkpoint every third batch
        await first.process(batch)
    restored = dict(states)  # the changelog at the kill; the database has all 9 batches
    position = int(restored[POSITION.decode()])
    assert position < batches[8][-1].offset + 1
    second, _, _ = make(restored, sink, checkpoint_every_s=5, ticks=Ticks())
    # Kafka's committed offset is past the checkpoint: the worker asks to go back to it.
    assert await second.process(batches[9]) == {(TOPICS.readings, 0): position}
    for batch in chunks(events[position:], 10):  # readings; their offset is their index
        assert await second.process(batch) == {}
    assert sink.readings.keys() == clean_sink.readings.keys()
    assert sink.hourly == clean_sink.hourly
    assert sink.forecasts == clean_sink.forecasts
    # Health the same but for when each device was last heard as its hour closed: states
    # restored ahead of the checkpoint move the watermark on sooner in the replay.
    assert sink.health.keys() == clean_sink.health.keys()
    for key, row in sink.health.items():
        assert row.model_copy(update={"last_seen": None}) == clean_sink.health[key].model_copy(
            update={"last_seen": None}
        )


async def test_a_failed_batch_after_kept_back_states_goes_back_to_the_checkpoint() -> None:
    devices = [("a", "UTC"), ("b", "Asia/Kolkata")]
    events = fleet_events(devices, 6)
    clean_sink = TableSink()
    clean, _, _ = make({}, clean_sink)
    for batch in chunks(events, 6):
        await clean.process(batch)

    sink, states = TableSink(), {}
    processor, _, _ = make(states, sink, checkpoint_every_s=60)
    batches = chunks(events, 6)
    for batch in batches[:4]:
        await processor.process(batch)
    position = int(states[POSITION.decode()])
    sink.fail_next = True
    with pytest.raises(ConnectionError):
        await processor.process(batches[4])
    # What followed the checkpoint is in no table: the worker starts over from its position.
    assert await processor.process(batches[4]) == {(TOPICS.readings, 0): position}
    for batch in chunks(
        [e for e in events if e.offset >= position and e.topic == TOPICS.readings], 6
    ):
        assert await processor.process(batch) == {}
    assert sink.hourly == clean_sink.hourly
    assert sink.forecasts == clean_sink.forecasts


async def test_a_partition_without_a_position_checkpoints_at_once() -> None:
    """Its states would otherwise lag the database's offsets, where a restarted worker
    without a position resumes."""
    sink, states, ticks = TableSink(), {}, Ticks()
    processor, _, _ = make(states, sink, checkpoint_every_s=60, ticks=ticks)
    at = T0
    await processor.process([reading_event("a", 0, at, offset=0)])
    assert processor.report.checkpoint
    await processor.process([reading_event("a", 1, at + timedelta(minutes=15), offset=1)])
    assert not processor.report.checkpoint
    other = reading_event("z", 0, at + timedelta(minutes=15), offset=0)
    await processor.process([SourceEvent(other.topic, 3, 0, other.key, other.value)])
    assert processor.report.checkpoint
    assert states["#next-offset:3"] == b"1" and states[POSITION.decode()] == b"2"
