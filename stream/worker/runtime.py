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

``bench/faust_floor.py`` measures a bare agent with and without these, in the same run.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

import faust
from faust.sensors.monitor import Monitor
from faust.transport.drivers.aiokafka import Consumer, Transport
from faust.types import TP
from mode.services import WaitArgT, WaitResults


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
    """Faust's Kafka consumer, delivering each fetched message inline (see the module doc)."""

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


def tune(app: faust.App) -> None:
    """Give ``app`` the draining consumer (call before anything reads ``app.transport``)."""
    app.transport = DrainingTransport(app.conf.broker_consumer, app)


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
