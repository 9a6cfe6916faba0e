"""The worker's stall verdict (``/healthz``) and the topic declaration it provisions."""

from __future__ import annotations

import asyncio

import pytest

from schema.topics import KafkaTopics, changelog_topic, scoped_app_id
from stream.worker.lifetime import Progress, task_stacks
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
