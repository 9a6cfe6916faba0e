"""The worker's process: topics first, then Faust, with a health probe and bounded stops.

Issue 20 found three ways for a worker to be alive and useless; each has a guard here:

- **Topics missing at start.** A Faust consumer subscribed to a topic that does not exist yet
  ignores it until its next metadata refresh (five minutes), and Faust's table writes pick a
  changelog partition from the producer's metadata without waiting for it. So the worker
  creates every topic it uses (:func:`stream.provision.ensure_topics`, from
  ``schema.topics``) before Faust starts, and the agent has the producer track them all
  (:func:`track_topics`) before its first batch.
- **A crashed agent.** Faust's supervisor restarts a crashed agent in the same process, with
  the consumer's fetch positions and acknowledgements of the crashed one; issue 20's worker
  then sat idle with lag. Instead :meth:`Lifetime.fail` stops the whole worker and it exits
  non-zero (:data:`EXIT_AGENT_CRASHED`), so that its supervisor (compose, systemd) starts a
  fresh one, which resumes from the offsets stored with the rows.
- **Readings delivered and never processed.** A restarted worker sat idle in the stall test
  with part of a partition read by its consumer and never handed to its agent, the consumer's
  position past it (a Faust stream skips, unacknowledged, an event taken while the app's flow
  is held or of an older generation; which of these it was is not pinned down). When the
  worker waits for events while a readings partition is read to its end but processed only
  part of the way for ``resync_after_s``, the partition is sought back to the next offset to
  process (:func:`stranded`) and fetched again.
- **A stall of any other cause.** :class:`Progress` reports ``/healthz`` unhealthy, and logs
  why, when readings wait on an assigned partition and no batch has completed for
  ``stall_after_s``.
- **A stop that never ends.** SIGTERM (or a failure) arms a watchdog thread that exits the
  process (:data:`EXIT_STOP_TIMEOUT`) if the clean stop has not finished in ``stop_timeout_s``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import faust
import uvloop
from faust.types import TP
from mode import Service

from schema.topics import KafkaTopics
from stream.bridge.health import Health, HealthServer, from_checks
from stream.provision import ensure_topics_retrying
from stream.settings import StreamSettings
from stream.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

EXIT_AGENT_CRASHED = 70
"""Exit status after an agent crashed: a supervisor should start a fresh worker."""
EXIT_STOP_TIMEOUT = 71
"""Exit status when a stop did not finish within ``stop_timeout_s``."""


class Progress:
    """Whether the worker moves: batches completed against readings waiting (no I/O)."""

    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stall_after_s, self._clock = stall_after_s, clock
        self._last = clock()
        self._failure: str | None = None
        self.lag: int | None = None
        self.busy = False
        """A batch is being processed (the agent does not wait for events)."""

    def advanced(self) -> None:
        """A batch was processed (or there was nothing to do)."""
        self._last = self._clock()

    def resumed(self) -> None:
        """Processing (re)starts now, after a rebalance and its table recovery: the time
        without a batch counts from here (a slow start-up is not a stall)."""
        self._last = self._clock()

    def failed(self, reason: str) -> None:
        self._failure = reason

    def idle_s(self) -> float:
        return self._clock() - self._last

    def assess(self) -> Health:
        idle = self.idle_s()
        stalled = bool(self.lag) and idle > self._stall_after_s
        return from_checks(
            (
                (f"failed: {self._failure}", self._failure is not None),
                (f"{self.lag} readings waiting, no batch for {idle:.0f} s", stalled),
            ),
            lag=self.lag,
            seconds_since_progress=round(idle, 1),
        )


class Lifetime:
    """The worker's exit status and its stop watchdog (shared by the agent and the process)."""

    def __init__(self, stop_timeout_s: float) -> None:
        self._stop_timeout_s = stop_timeout_s
        self.exit_code = 0
        self._watchdog: threading.Timer | None = None
        self._lock = threading.Lock()

    def arm_watchdog(self, why: str) -> None:
        """From now on the process ends within ``stop_timeout_s``, stopped cleanly or not."""
        with self._lock:
            if self._watchdog is not None:
                return
            log.info("%s: stopping (at most %.0f s)", why, self._stop_timeout_s)
            self._watchdog = threading.Timer(self._stop_timeout_s, self._hard_exit)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _hard_exit(self) -> None:
        code = self.exit_code or EXIT_STOP_TIMEOUT
        log.critical("did not stop within %.0f s: exiting (%d)", self._stop_timeout_s, code)
        logging.shutdown()
        os._exit(code)

    def fail(self, reason: str) -> None:
        """Stop the worker and exit non-zero: a fresh process recovers, a restarted agent in
        this one may not (see the module doc)."""
        if self.exit_code:
            return
        log.critical("%s: stopping the worker; it exits %d", reason, EXIT_AGENT_CRASHED)
        self.exit_code = EXIT_AGENT_CRASHED
        self.arm_watchdog(reason)
        os.kill(os.getpid(), signal.SIGTERM)


class WorkerProcess(faust.Worker):
    """Faust's worker with the stop watchdog on SIGTERM/SIGINT and the exit status of
    :class:`Lifetime`."""

    def __init__(self, app: faust.App, lifetime: Lifetime, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._lifetime = lifetime

    def _on_sigterm(self) -> None:
        self._lifetime.arm_watchdog("SIGTERM")
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._lifetime.arm_watchdog("SIGINT")
        super()._on_sigint()

    def _shutdown_loop(self) -> None:
        super()._shutdown_loop()
        if self._lifetime.exit_code:
            raise SystemExit(self._lifetime.exit_code)


class HealthService(Service):
    """``/healthz`` and ``/metrics`` (:class:`~stream.worker.metrics.WorkerMetrics`) on the
    worker's loop, started and stopped with the app, and a periodic check that updates the
    consumer lag and logs a stall (and its end)."""

    def __init__(
        self,
        settings: StreamSettings,
        progress: Progress,
        lag: Callable[[], dict[int, int]],
        lag_topic: str,
        diagnose: Callable[[], str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._settings, self._progress, self._lag = settings, progress, lag
        self._lag_topic = lag_topic
        """The topic whose per-partition lag ``lag`` returns (the readings)."""
        self._diagnose = diagnose
        """What else to log when the worker turns unhealthy (its consumer's flow state)."""
        self.metrics = WorkerMetrics()
        self.registry = self.metrics.registry
        self._server: HealthServer | None = None
        self._was_healthy = True

    async def on_start(self) -> None:
        if self._settings.metrics_port:
            server = HealthServer(
                self._settings.metrics_host,
                self._settings.metrics_port,
                self.registry,
                self._progress.assess,
            )
            self._server = await server.__aenter__()

    async def on_stop(self) -> None:
        if self._server is not None:
            await self._server.aclose()

    @Service.timer(2.0)
    async def _check(self) -> None:
        self._progress.lag = self.metrics.set_lag(self._lag_topic, self._lag())
        self.metrics.idle.set(self._progress.idle_s())
        health = self._progress.assess()
        if health.healthy != self._was_healthy:
            if health.healthy:
                log.info("worker healthy again")
            else:
                log.warning("worker unhealthy: %s", "; ".join(health.detail["problems"]))
                log.warning("worker unhealthy; where its tasks wait:\n%s", task_stacks())
                log.warning("worker unhealthy; its threads:\n%s", thread_stacks())
                if self._diagnose is not None:
                    log.warning("worker unhealthy; its consumer:\n%s", self._diagnose())
        self._was_healthy = health.healthy


def task_stacks() -> str:
    """Where every task of the running loop waits, down its whole await chain (a suspended
    task's own stack shows only its outermost frame): what an operator (or the next developer)
    needs to tell a stall's cause from a log alone."""
    lines = []
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        lines.append(f"task {task.get_name()}:")
        lines += [f"    {where}" for where in await_chain(task.get_coro())]
    return "\n".join(lines)


def thread_stacks() -> str:
    """Where every other thread is (a model call in an executor thread, a consumer thread)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        lines.append(f"thread {names.get(ident, ident)}:")
        lines += [
            f"    {f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack(frame)[-12:]
        ]
    return "\n".join(lines)


def consumer_state(app: faust.App) -> str:
    """The Faust consumer's flow state: what decides whether it fetches (read for the log of a
    stall; Faust has no public accessor for most of it)."""
    consumer: Any = app.consumer

    def tps(tpset: Iterable[TP]) -> str:
        return ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in tpset)) or "-"

    lines = [
        f"flow active: {consumer.flow_active}; app flow control active: "
        f"{app.flow_control.is_active()}; in recovery: {app.in_recovery}; "
        f"rebalancing: {app.rebalancing}",
        f"assigned: {tps(consumer.assignment())}",
        f"active: {tps(consumer._active_partitions or ())}",
        f"paused: {tps(consumer._paused_partitions)}",
        f"buffered (pressure): {tps(consumer._buffered_partitions)}",
    ]
    for tp in sorted(consumer.assignment()):
        lines.append(
            f"{tp.topic}[{tp.partition}]: highwater {consumer.highwater(tp)}, read "
            f"{consumer._read_offset.get(tp)}, committed {consumer._committed_offset.get(tp)}, "
            f"acked {len(consumer._acked.get(tp, ()))}, gaps {len(consumer._gap.get(tp, ()))}"
        )
    for agent in app.agents.values():
        queue: Any = agent.channel.queue
        lines.append(
            f"agent {agent.name}: channel queue {queue.qsize()} of {queue.maxsize}, "
            f"pending pressure drops {len(queue._pending_pressure_drop_callbacks)}"
        )
    return "\n".join(lines)


_FRAMES = ("cr_frame", "ag_frame", "gi_frame")  # coroutine, async generator, generator
_AWAITS = ("cr_await", "ag_await", "gi_yieldfrom")


def await_chain(awaitable: object) -> list[str]:
    """``file:line function`` of each coroutine, async generator or generator it awaits."""
    chain: list[str] = []
    while awaitable is not None and len(chain) < 64:
        frame = next((f for a in _FRAMES if (f := getattr(awaitable, a, None))), None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        if isinstance(awaitable, asyncio.Task):  # awaited task: follow its coroutine
            chain.append(f"(awaits task {awaitable.get_name()})")
            awaitable = awaitable.get_coro()
            continue
        awaitable = next((n for a in _AWAITS if (n := getattr(awaitable, a, None))), None) or (
            _wrapped(awaitable) if frame is None else None
        )
    return chain


def _wrapped(awaitable: object) -> object | None:
    """The coroutine or generator behind a frameless wrapper: ``coro.__await__()`` (how Faust
    awaits an agent's actor) or ``agen.asend()`` (each step of an ``async for``)."""
    if awaitable is None or isinstance(awaitable, asyncio.Future):
        return None
    return next((r for r in gc.get_referents(awaitable) if _has_frame(r)), None)


def _has_frame(obj: object) -> bool:
    return any(getattr(obj, a, None) is not None for a in _FRAMES)


def consumer_lag(
    app: faust.App, next_offset: Callable[[str, int], int | None], topic: str
) -> dict[int, int]:
    """Readings of ``topic`` not processed yet, per partition of it this worker is assigned
    (those whose highwater the consumer knows)."""
    lags = {}
    for tp in app.consumer.assignment():
        if tp.topic != topic:
            continue
        high = app.consumer.highwater(tp)
        if high is None:
            continue
        lags[tp.partition] = max(0, high - (next_offset(tp.topic, tp.partition) or 0))
    return lags


def stranded(
    app: faust.App, next_offset: Callable[[str, int], int | None], topic: str
) -> dict[TP, int]:
    """Partitions of ``topic`` the consumer has read to their end but the processor has not
    processed to it, with the next offset to process: delivered and lost on the way (see the
    module doc), or on their way still, which the caller tells apart by time."""
    consumer: Any = app.consumer  # the read offsets have no public accessor
    found = {}
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        high, read = consumer.highwater(tp), consumer._read_offset.get(tp)
        wanted = next_offset(tp.topic, tp.partition)
        if high is None or read is None or wanted is None:
            continue
        if wanted < high and read >= high - 1:
            found[tp] = wanted
    return found


async def refetch_stranded(
    app: faust.App,
    progress: Progress,
    next_offset: Callable[[str, int], int | None],
    topic: str,
    after_s: float,
) -> None:
    """Seek back every :func:`stranded` partition, once the worker has waited ``after_s`` for
    events without a batch."""
    if progress.busy or progress.idle_s() < after_s:
        return
    for tp, offset in stranded(app, next_offset, topic).items():
        log.warning(
            "%s[%d] was read to its end but processed only to offset %d, %.0f s ago: "
            "fetching it again from there",
            tp.topic,
            tp.partition,
            offset,
            progress.idle_s(),
        )
        await app.consumer.seek(tp, offset)


async def track_topics(app: faust.App, names: Iterable[str]) -> None:
    """Have the producer keep metadata of every topic the agent writes to.

    aiokafka's producer refreshes metadata only for the topics it has sent to, replacing what
    it knew; Faust's table picks a changelog partition from that metadata synchronously
    (``eager_partitioning``), so a changelog the producer has not sent to yet (or dropped
    from a refresh) gives ``TypeError: 'NoneType' object is not iterable`` in
    ``AIOKafkaProducer._partition``.
    """
    producer: Any = app.producer  # Faust's aiokafka driver; its client has no public handle
    client = producer._ensure_producer().client
    for name in names:
        client.add_topic(name)
    for name in names:
        await client._wait_on_metadata(name)


GC_THRESHOLDS = (50_000, 50, 100)
"""The worker's collector thresholds: (allocations, young collections, middle collections)."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop, for every loop of the process (the consumer's thread makes its own):
    Faust turns its loop over several times per message."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.new_event_loop()


def run(
    settings: StreamSettings,
    create_app: Callable[[StreamSettings, Lifetime], faust.App],
) -> NoReturn:
    """Create the topics, then run the Faust worker until it stops; exit with its status."""
    # The device states are hundreds of thousands of long-lived objects: with the default
    # thresholds (700, 10, 10) the collector ran a full collection over all of them every
    # second or so while catching up (see stream.worker.forecasting.freeze_long_lived).
    gc.set_threshold(*GC_THRESHOLDS)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)  # Faust runs on this loop afterwards
    specs = KafkaTopics(settings.topic_namespace).worker_specs(settings.app_id)
    # Logging is configured already (schema.commandline), in the format every service uses.
    log.info("kafka: creating missing topics among %d", len(specs))
    loop.run_until_complete(
        ensure_topics_retrying(
            settings.kafka.bootstrap,
            specs,
            client_id=f"{settings.app_id}-topics",
            within_s=settings.topic_wait_s,
        )
    )
    lifetime = Lifetime(settings.stop_timeout_s)
    app = create_app(settings, lifetime)
    worker = WorkerProcess(
        app, lifetime, loglevel=settings.log_level, quiet=True, loop=loop, override_logging=False
    )
    worker.execute_from_commandline()
