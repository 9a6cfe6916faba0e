"""The worker's stall verdict (``/healthz``) and the topic declaration it provisions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any

import pytest

from schema.topics import KafkaTopics, changelog_topic, scoped_app_id
from stream.worker.lifetime import Progress, await_chain, task_stacks
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
