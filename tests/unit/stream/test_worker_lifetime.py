"""The worker's stall verdict (``/healthz``) and the topic declaration it provisions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any

import pytest
from faust.types import TP

from schema.topics import KafkaTopics, changelog_topic, scoped_app_id
from stream.worker.lifetime import (
    Progress,
    await_chain,
    refetch_stranded,
    stranded,
    task_stacks,
)
from tests.fixtures.clock import ManualClock

pytestmark = pytest.mark.unit


def test_lag_without_progress_for_the_stall_time_is_unhealthy_and_says_why() -> None:
    clock = ManualClock()
    progress = Progress(stall_after_s=60, clock=clock)
    progress.lag = 500
    clock.now = 59
    assert progress.assess().healthy
    clock.now = 61
    health = progress.assess()
    assert not health.healthy
    assert health.detail["problems"] == ["500 readings waiting, no batch for 61 s"]
    progress.advanced()
    assert progress.assess().healthy


def test_the_stall_clock_starts_when_processing_resumes_not_at_start_up() -> None:
    clock = ManualClock()
    progress = Progress(stall_after_s=30, clock=clock)
    clock.now = 35  # a slow start: the model loaded, the group joined, the tables recovered
    progress.resumed()
    progress.lag = 2912
    assert progress.assess().healthy
    clock.now = 66
    assert progress.assess().detail["problems"] == ["2912 readings waiting, no batch for 31 s"]


def test_idle_without_lag_is_healthy_and_a_failure_is_not() -> None:
    clock = ManualClock()
    progress = Progress(stall_after_s=60, clock=clock)
    progress.lag = 0
    clock.now = 3600
    assert progress.assess().healthy
    progress.failed("TypeError()")
    assert progress.assess().detail["problems"] == ["failed: TypeError()"]


def test_a_namespace_scopes_the_worker_group_and_changelog() -> None:
    specs = {s.name: s for s in KafkaTopics("ns").worker_specs("wattstream-stream")}
    changelog = specs["ns.wattstream-stream-device-state-changelog"]
    assert changelog.compacted and changelog.partitions == specs["ns.readings"].partitions
    assert changelog.configs() == {"cleanup.policy": "compact"}
    assert specs["ns.readings"].configs()["cleanup.policy"] == "delete"
    assert scoped_app_id("wattstream-stream", "") == "wattstream-stream"
    assert changelog_topic(scoped_app_id("x", "a")) != changelog_topic(scoped_app_id("x", "b"))


async def test_task_stacks_name_where_each_task_waits() -> None:
    never = asyncio.Event()

    async def waits_for_the_sink() -> None:
        await never.wait()

    task = asyncio.create_task(waits_for_the_sink(), name="agent-under-test")
    await asyncio.sleep(0)
    try:
        stacks = task_stacks()
        assert "task agent-under-test:" in stacks
        # The whole await chain, not only the task's outermost frame: down to Event.wait().
        chain = stacks.split("task agent-under-test:", 1)[1].split("\ntask ", 1)[0]
        assert "waits_for_the_sink" in chain
        assert "locks.py" in chain
    finally:
        task.cancel()


async def test_await_chain_follows_an_awaited_actor_and_an_async_for() -> None:
    """Faust awaits an agent through its actor's ``__await__`` and the agent steps an async
    generator: neither wrapper has a frame of its own, and the chain must go through both."""
    never = asyncio.Event()

    class Actor:
        def __init__(self, it: Coroutine[Any, Any, None]) -> None:
            self.it = it

        def __await__(self) -> Generator[Any, None, None]:
            return self.it.__await__()

    async def batches() -> AsyncIterator[int]:
        await never.wait()
        yield 1

    async def agent() -> None:
        async for _ in batches():
            pass

    async def execute_actor(actor: Actor) -> None:
        await actor

    task = asyncio.create_task(execute_actor(Actor(agent())))
    await asyncio.sleep(0)
    try:
        chain = " ".join(await_chain(task.get_coro()))
        for step in ("execute_actor", "agent", "batches", "locks.py"):
            assert step in chain
    finally:
        task.cancel()


class StubConsumer:
    """What :func:`stranded` reads of Faust's consumer, and the seeks asked of it."""

    def __init__(self, highwaters: dict[TP, int], read: dict[TP, int]) -> None:
        self._highwaters, self._read_offset = highwaters, read
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self._highwaters)

    def highwater(self, tp: TP) -> int:
        return self._highwaters[tp]

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


class StubApp:
    def __init__(self, consumer: StubConsumer) -> None:
        self.consumer = consumer


async def test_a_partition_read_to_its_end_but_not_processed_is_fetched_again() -> None:
    """Events a stream skipped (a rebalance, a recovery) are never delivered again by
    themselves: once the worker has waited long enough without a batch, their partition is
    sought back to the next offset to process. A partition still on its way is left alone."""
    lost, on_its_way, done = TP("r", 0), TP("r", 1), TP("r", 2)
    consumer = StubConsumer(
        {lost: 768, on_its_way: 500, done: 300, TP("other", 0): 9},
        {lost: 767, on_its_way: 200, done: 299},
    )
    processed = {0: 382, 1: 150, 2: 300}
    app: Any = StubApp(consumer)
    assert stranded(app, lambda _t, p: processed[p], "r") == {lost: 382}
    clock = ManualClock()
    progress = Progress(stall_after_s=120, clock=clock)
    clock.now = 9
    await refetch_stranded(app, progress, lambda _t, p: processed[p], "r", after_s=10)
    assert consumer.seeks == []  # not yet: it may be on its way to the agent
    clock.now = 11
    progress.busy = True  # in a batch: the events may be in it
    await refetch_stranded(app, progress, lambda _t, p: processed[p], "r", after_s=10)
    assert consumer.seeks == []
    progress.busy = False
    await refetch_stranded(app, progress, lambda _t, p: processed[p], "r", after_s=10)
    assert consumer.seeks == [(lost, 382)]
