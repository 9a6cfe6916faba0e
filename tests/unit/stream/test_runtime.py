"""The draining consumer's inline delivery: a callback that finishes without suspending is run
in place; one that suspends continues where it stopped, with its result, its exception and a
cancellation reaching it as if it had been awaited all along."""

from __future__ import annotations

import asyncio

import pytest

from stream.worker.runtime import run_inline

pytestmark = pytest.mark.unit


async def test_a_callback_that_never_suspends_runs_in_place() -> None:
    seen: list[int] = []

    async def deliver(n: int) -> int:
        seen.append(n)
        return n * 2

    assert run_inline(deliver(21)) == (True, 42)
    assert seen == [21]


async def test_a_callback_that_raises_without_suspending_raises_in_place() -> None:
    async def broken() -> None:
        raise ValueError("undecodable")

    with pytest.raises(ValueError, match="undecodable"):
        run_inline(broken())


async def test_a_suspended_callback_continues_from_where_it_stopped() -> None:
    room = asyncio.Event()
    steps: list[str] = []

    async def deliver() -> str:
        steps.append("decoded")
        await room.wait()  # a full stream buffer
        steps.append("queued")
        await asyncio.sleep(0)
        return "done"

    done, rest = run_inline(deliver())
    assert not done and steps == ["decoded"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    room.set()
    assert await task == "done"
    assert steps == ["decoded", "queued"]  # nothing ran twice


async def test_cancelling_the_rest_cancels_the_callback_where_it_waits() -> None:
    cleaned: list[bool] = []

    async def deliver() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(True)

    done, rest = run_inline(deliver())
    assert not done
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]
