"""The tests' one waiting helper: returns the probe's value, fails with what it waited for."""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tests.fixtures.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.unit


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until("the third call", lambda: next(counter) >= 2 and "yes", 5, interval_s=0) == (
        "yes"
    )


def test_a_timeout_names_what_was_awaited_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the moon \(last: 0\)\nstill night"):
        wait_until("the moon", lambda: 0, 0.05, interval_s=0.01, detail=lambda: "still night")


def test_tolerated_errors_count_as_not_yet_and_others_propagate() -> None:
    calls = itertools.count()

    def flaky() -> bool:
        if next(calls) < 2:
            raise ConnectionRefusedError
        return True

    assert wait_until("a server", flaky, 5, interval_s=0, tolerate=(OSError,))
    with pytest.raises(ZeroDivisionError):
        wait_until("a division", lambda: 1 / 0, 5, tolerate=(OSError,))


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        return f"the last {lines} lines"


def test_a_watched_process_that_exits_fails_at_once() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    with pytest.raises(AssertionError, match=r"gone exited \(code 0\) while waiting for x"):
        wait_until("x", lambda: False, 60, watched=[Process("gone", done)])


async def test_the_async_variant_awaits_coroutine_probes_and_details() -> None:
    counter = itertools.count()

    async def third_call() -> int:
        return next(counter) // 2  # 0, 0, 1

    assert await wait_until_async("the third call", third_call, 5, interval_s=0) == 1
    assert await wait_until_async("a plain probe", lambda: "plain", 5) == "plain"

    async def never() -> int:
        return 0

    async def why() -> str:
        return "because"

    with pytest.raises(AssertionError, match=r"waiting for never \(last: 0\)\nbecause"):
        await wait_until_async("never", never, 0.05, interval_s=0.01, detail=why)
