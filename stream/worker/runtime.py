"""Faust's per-message machinery, made cheap enough for tens of thousands of readings a second.

Measured with a bare agent (``noack_take`` and ``ack``, nothing else) on the bench's readings
topic, faust-streaming 0.15.3 spends ~250 µs of CPU per message on this machine before any
work of ours, and most of it in two places:

* ``Consumer._drain_messages`` hands every message to the conductor through
  ``Service.wait_first(callback(message), suspend_flow.wait())``, which wraps four awaitables
  in tasks (the callback, the flow event, the consumer's stopped and crashed events), waits for
  the first and cancels the other three: several event-loop turns per message.
  :class:`DrainingConsumer` runs the callback inline when it can finish without suspending
  (the usual case: the conductor decodes the message and puts it on a queue with room), and
  only a callback that does suspend (a full stream buffer, a producer buffer to ebb) races the
  flow event as before, from where it stopped. Suspended flow, a stopped or a crashed consumer
  take Faust's own path unchanged. Its seeks run in the consumer's own thread (Faust's seek
  from the event loop's thread races the aiokafka fetcher; see ``_seek``).
* The :class:`~faust.sensors.monitor.Monitor` sensor records every message, event and table
  operation for Faust's web views, which the worker does not serve (its metrics are its own:
  :mod:`stream.worker.lifetime`). :class:`QuietMonitor` keeps the service and drops those
  per-message records.

* Even inline, a Faust message costs ~100 µs of CPU on its way to the agent (a ``Message``,
  an ``Event``, the stream's queue, the take buffer, the acknowledgement), several times what
  the worker does with a reading. :class:`DrainingConsumer` delivers the records of a
  *batched* topic (:attr:`DrainingTransport.batched_topics`: the worker's source topics) a
  fetched partition batch at a time: one message whose value is the tuple of aiokafka
  records, whose offset is the last record's, read through :class:`PassThroughSchema`. Its
  earlier offsets are registered as a gap (Faust's own mechanism for offsets that carry no
  message, e.g. transaction markers), so acknowledging the batch message commits them all and
  an unacknowledged one (sought back) commits none. Other topics (the table's changelog) keep
  a message per record.

``bench/faust_floor.py`` measures a bare agent with and without these, in the same run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Generator, Sequence
from typing import Any, cast

import faust
from aiokafka.structs import ConsumerRecord
from faust.sensors.monitor import Monitor
from faust.transport.drivers.aiokafka import Consumer, Transport
from faust.types import TP, AppT, Message
from faust.types.tuples import ConsumerMessage
from mode.services import WaitArgT, WaitResults

Records = tuple[ConsumerRecord[bytes, bytes], ...]
"""The value of a batch message: one partition's fetched records, in offset order."""


class _Resumed:
    """Awaiting this continues ``coro`` from the point where it first suspended on
    ``yielded`` (what ``yield from`` would do had the caller not stepped it by hand)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro, self._yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        value = self._yielded
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # noqa: BLE001  # thrown into the awaiter: forwarded
                try:
                    value = self._coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = self._coro.send(sent)
                except StopIteration as done:
                    return done.value


async def _rest_of(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    return await _Resumed(coro, yielded)


def run_inline(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Step ``coro`` once: ``(True, result)`` if it finished without suspending (its
    exception, if it raised, propagates), else ``(False, a coroutine that continues it)``."""
    try:
        yielded = coro.send(None)
    except StopIteration as done:
        return True, done.value
    return False, _rest_of(coro, yielded)


class DrainingConsumer(Consumer):
    """Faust's Kafka consumer, delivering each fetched message inline and the records of
    batched topics a partition batch at a time (see the module doc)."""

    async def getmany(
        self,
        timeout: float,  # noqa: ASYNC109  # Faust's signature
    ) -> AsyncIterator[tuple[TP, Message]]:
        batched = cast("DrainingTransport", self.transport).batched_topics
        if not batched:
            async for item in super().getmany(timeout):
                yield item
            return
        # Faust's getmany, less the per-record round robin across partitions (a partition's
        # batch is one message here, so no partition waits behind another's thousands).
        records, active = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:  # as Faust does: back to the committed offsets
            try:
                await self.perform_seek()
            except Exception as exc:  # noqa: BLE001  # Faust logs and fetches again
                self.log.warning("exception performing seek when flow not active %r", exc)
            return
        for tp, fetched in records.items():
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if not fetched or not (
                active is None or tp in active or tp in self._buffered_partitions
            ):
                continue
            for message in await self._messages(tp, fetched, batched):
                yield tp, message

    async def _messages(
        self, tp: TP, fetched: list[ConsumerRecord[bytes, bytes]], batched: frozenset[str]
    ) -> list[Message]:
        """What a partition's fetched records reach the streams as: a batch message, or a
        message per record of a topic that is not batched."""
        if tp.topic not in batched:
            return [self._to_message(tp, record) for record in fetched]
        if len(fetched) > 1:
            await self._add_gap(tp, fetched[0].offset, fetched[-1].offset - 1)
        return [self._batch_message(tp, tuple(fetched))]

    def ack(self, message: Message) -> bool:
        # Faust stops tracking an acknowledged message only if its offset was not acknowledged
        # before and is not below the committed one; a batch the worker fetched again after
        # seeking back (an offset gap, a checkpoint behind the commit, stranded readings) is
        # neither, so it stayed tracked and a clean stop waited for it until its watchdog
        # ended the process (exit 71 in the two-worker chaos run).
        acked: bool = super().ack(message)
        self._unacked_messages.discard(message)
        return acked

    def release(self, message: Message) -> None:
        """Stop tracking ``message`` without acknowledging it: its partition was sought back
        and the message comes again."""
        self._unacked_messages.discard(message)

    def _batch_message(self, tp: TP, records: Records) -> ConsumerMessage:
        last = records[-1]
        timestamp = last.timestamp / 1000.0 if last.timestamp is not None else None
        return ConsumerMessage(
            tp.topic,
            tp.partition,
            last.offset,
            cast("float", timestamp),
            last.timestamp_type,
            None,
            None,
            cast("bytes", records),  # read back by PassThroughSchema
            None,
            tp=tp,
            generation_id=self.app.consumer_generation_id,
        )

    async def _seek(self, partition: TP, offset: int) -> None:
        # Faust seeks from the event loop's thread straight into the aiokafka consumer that
        # runs in the consumer thread, racing its fetcher (in the chaos run, aiokafka's
        # ``fetched_records`` raised KeyError on the partition just sought and the worker
        # crashed): the seek runs in the consumer's own thread, as Faust's ``seek_wait`` does.
        async def seek_there() -> None:
            self._thread.seek(partition, offset)

        await self._thread.call_thread(seek_there)

    def _waits_on_flow(self, awaitable: WaitArgT) -> bool:
        frame = getattr(awaitable, "cr_frame", None)
        return frame is not None and frame.f_locals.get("self") is self.suspend_flow

    async def wait_first(
        self,
        *coros: WaitArgT,
        timeout: Any = None,  # noqa: ASYNC109  # mode's signature
    ) -> WaitResults:
        if (
            len(coros) == 2
            and timeout is None
            and isinstance(coros[0], Coroutine)
            and self._waits_on_flow(coros[1])
            and not self.suspend_flow.is_set()
            and not self._stopped.is_set()
            and not self._crashed.is_set()
        ):
            callback, flow = coros
            assert isinstance(callback, Coroutine)
            done, result = run_inline(callback)
            if done:
                assert isinstance(flow, Coroutine)
                flow.close()  # never started: nothing to cancel
                return WaitResults([callback], [result], False)
            return await super().wait_first(result, flow)
        return await super().wait_first(*coros, timeout=timeout)


class DrainingTransport(Transport):
    """Faust's Kafka transport with :class:`DrainingConsumer`."""

    Consumer = DrainingConsumer
    batched_topics: frozenset[str] = frozenset()


def tune(app: faust.App, batched_topics: Sequence[str] = ()) -> None:
    """Give ``app`` the draining consumer (call before anything reads ``app.transport``);
    ``batched_topics`` reach their streams a partition batch at a time (a topic over them
    needs :class:`PassThroughSchema`)."""
    transport = DrainingTransport(app.conf.broker_consumer, app)
    transport.batched_topics = frozenset(batched_topics)
    app.transport = transport


class PassThroughSchema(faust.Schema):  # type: ignore[type-arg]  # generic over no types here
    """A batch message's key and value as they are (no serializer: the value is the tuple of
    records, :data:`Records`, each with its raw key and value bytes)."""

    def loads_key(self, app: AppT, message: Message, **options: Any) -> Any:
        return message.key

    def loads_value(self, app: AppT, message: Message, **options: Any) -> Any:
        return message.value


class QuietMonitor(Monitor):
    """Faust's monitor without its per-message, per-event and per-table-operation records."""

    def on_message_in(self, *args: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any) -> None:
        return None

    def on_table_get(self, *args: Any) -> None:
        return None

    def on_table_set(self, *args: Any) -> None:
        return None

    def on_table_del(self, *args: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any) -> None:
        return None
