"""An alert a person resolves through the API while the worker still sees its condition, on the
real PostgreSQL: the worker's processing code and sink against the API's own resolve query.

The person's resolution stands (the worker never rewrites or reopens that alert); the condition
still holding the next hour opens a new alert of the same device and kind, which the worker then
resolves by itself once the condition clears.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from api import queries
from schema.device_messages import DeviceBirth, Location
from schema.topics import KafkaTopics
from schema.wire import Energy, Power, Reading
from stream.core.alerts import alert_id
from stream.core.hourclose import ForecastRequest
from stream.worker import processor as worker
from stream.worker.sink import ResultSink

pytestmark = pytest.mark.integration

TOPICS = KafkaTopics("resolve")
T0 = datetime(2026, 6, 1, tzinfo=UTC)
H = timedelta(hours=1)
QUARTER = timedelta(minutes=15)


class NoModel:
    history_hours = 24

    def supports(self, kind: str) -> bool:
        return False  # silence needs no forecast

    async def forecast(self, requests: Sequence[ForecastRequest]) -> worker.ForecastBatch:
        raise AssertionError("no device has a model")


class Outbox:
    def __init__(self) -> None:
        self.messages: list[worker.OutMessage] = []

    async def publish(self, messages: Sequence[worker.OutMessage]) -> None:
        self.messages += messages


class Feed:
    """Device events on one partition, an hour at a time, with the clock following them."""

    def __init__(self) -> None:
        self.offset = 0
        self.now = T0

    def _event(self, topic: str, device: str, value: bytes) -> worker.SourceEvent:
        self.offset += 1
        return worker.SourceEvent(topic, 0, self.offset, device.encode(), value)

    def births(self, devices: Sequence[str]) -> list[worker.SourceEvent]:
        return [
            self._event(
                TOPICS.device_birth,
                d,
                DeviceBirth(
                    device_id=d, kind="household_meter", tz="UTC",
                    location=Location(latitude=0, longitude=0), nominal_kw=2.0, firmware="1",
                    interval_s=900, ts=T0,
                ).model_dump_json().encode(),
            )
            for d in devices
        ]  # fmt: skip

    def hour(self, k: int, devices: Sequence[str]) -> list[worker.SourceEvent]:
        events = []
        for q in range(4):
            ts = T0 + k * H + q * QUARTER
            for d in devices:
                reading = Reading(
                    device_id=d, seq=4 * k + q, ts=ts, tz="UTC", interval_s=900,
                    energy=Energy(value=0.25 + 0.01 * q), power=Power(value=1.0 + 0.04 * q),
                )  # fmt: skip
                events.append(self._event(TOPICS.readings, d, reading.to_json()))
        self.now = T0 + k * H + 3 * QUARTER + timedelta(minutes=1)
        return events


async def alerts_of(conn: asyncpg.Connection, device_id: str) -> dict[str, dict[str, object]]:
    rows = await conn.fetch(
        "SELECT alert_id, hour_start, hours, severity, resolved_hour, resolved_by,"
        " resolution_note FROM alerts WHERE device_id = $1",
        device_id,
    )
    return {r["alert_id"]: dict(r) for r in rows}


async def test_a_person_resolves_a_firing_alert_and_the_condition_opens_a_new_one(
    database: str,
) -> None:
    feed, outbox = Feed(), Outbox()
    sink = ResultSink(database, group_id="resolve")
    await sink.start()
    settings = worker.ProcessorSettings(timedelta(minutes=5), max_silent=timedelta(hours=8))
    processor = worker.EventProcessor(
        topics=TOPICS, states={}, sink=sink, forecasts=NoModel(), publisher=outbox,
        settings=settings, clock=lambda: feed.now,
    )  # fmt: skip
    conn = await asyncpg.connect(database)
    first = alert_id("a", "silent", T0 + 3 * H)
    second = alert_id("a", "silent", T0 + 4 * H)
    try:
        await processor.process(feed.births(["a", "b"]))
        for k in range(3):  # both report
            await processor.process(feed.hour(k, ["a", "b"]))
        for k in (3, 4):  # a goes silent; b's readings close a's empty hour 3
            await processor.process(feed.hour(k, ["b"]))
        assert (await alerts_of(conn, "a")).keys() == {first}

        resolved, row = await queries.resolve_alert(conn, first, "ana", "meter replaced")
        assert resolved and row is not None and row["state"] == "resolved"
        left = await alerts_of(conn, "a")
        assert left[first]["resolved_hour"] == T0 + 4 * H  # the end of the last hour it held
        again, _ = await queries.resolve_alert(conn, first, "bo", None)
        assert not again  # already resolved: the API answers 409
        published = len(outbox.messages)

        # a is still silent in hour 4: the person's alert stays as it is, a new one opens.
        await processor.process(feed.hour(5, ["b"]))
        alerts = await alerts_of(conn, "a")
        assert alerts[first] == left[first]
        assert alerts.keys() == {first, second}
        assert (alerts[second]["hour_start"], alerts[second]["hours"]) == (T0 + 4 * H, 1)
        assert (alerts[second]["resolved_hour"], alerts[second]["severity"]) == (None, "critical")
        live = [m for m in outbox.messages[published:] if m.topic == TOPICS.alerts]
        assert [m.value.count(first.encode()) for m in live] == [0]  # only the new one is sent
        assert second.encode() in live[0].value

        # a speaks again: the new alert resolves by itself (a silence judged afterwards would
        # have the person's alert's key: it is left alone too).
        for k in (6, 7, 8):
            await processor.process(feed.hour(k, ["a", "b"]))
        alerts = await alerts_of(conn, "a")
        assert alerts.keys() == {first, second}
        assert alerts[first] == left[first]
        assert alerts[second]["resolved_hour"] == T0 + 5 * H
        assert alerts[second]["resolved_by"] is None
    finally:
        await conn.close()
        await sink.stop()
