"""The per-client queue: in order while the client keeps up, latest-per-key when it does not."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from api.live.queue import ClientQueue, Verdict
from tests.fixtures.clock import ManualClock

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Ev:
    device: str
    n: int

    @property
    def key(self) -> str:
        return self.device


def drain(queue: ClientQueue[Ev]) -> list[tuple[str, int, int]]:
    out = []
    while (item := queue.pop()) is not None:
        event, coalesced = item
        out.append((event.device, event.n, coalesced))
    return out


def test_a_client_that_keeps_up_gets_everything_in_order() -> None:
    queue: ClientQueue[Ev] = ClientQueue(4, 10.0, ManualClock())
    for n in range(3):
        assert queue.put(Ev("a", n)) is Verdict.QUEUED
    assert drain(queue) == [("a", 0, 0), ("a", 1, 0), ("a", 2, 0)]
    assert not queue.behind


def test_a_full_queue_coalesces_to_the_latest_per_key() -> None:
    queue: ClientQueue[Ev] = ClientQueue(4, 10.0, ManualClock())
    for event in [Ev("a", 0), Ev("b", 0), Ev("a", 1), Ev("b", 1)]:
        assert queue.put(event) is Verdict.QUEUED
    # Full: compacts to a1, b1 (each replaced one), then a2 replaces a1.
    assert queue.put(Ev("a", 2)) is Verdict.COALESCED
    assert queue.behind
    assert queue.put(Ev("c", 0)) is Verdict.QUEUED
    assert drain(queue) == [("b", 1, 1), ("a", 2, 2), ("c", 0, 0)]
    assert queue.coalesced_total == 3
    assert not queue.behind  # drained: caught up


def test_more_distinct_keys_than_room_overflows() -> None:
    queue: ClientQueue[Ev] = ClientQueue(2, 10.0, ManualClock())
    queue.put(Ev("a", 0))
    queue.put(Ev("b", 0))
    assert queue.put(Ev("c", 0)) is Verdict.OVERFLOW


def test_a_client_behind_for_too_long_is_given_up() -> None:
    clock = ManualClock()
    queue: ClientQueue[Ev] = ClientQueue(2, 5.0, clock)
    queue.put(Ev("a", 0))
    queue.put(Ev("b", 0))
    assert queue.put(Ev("a", 1)) is Verdict.COALESCED  # behind from t=0
    clock.now = 4.0
    assert queue.pop() is not None  # reads one (b0), but a1 still waits: not caught up
    assert queue.put(Ev("b", 1)) is Verdict.QUEUED
    clock.now = 5.5
    assert queue.put(Ev("a", 2)) is Verdict.TOO_SLOW


def test_catching_up_resets_the_clock() -> None:
    clock = ManualClock()
    queue: ClientQueue[Ev] = ClientQueue(1, 5.0, clock)
    queue.put(Ev("a", 0))
    queue.put(Ev("a", 1))  # behind at t=0
    clock.now = 4.0
    drain(queue)
    clock.now = 9.0
    assert queue.put(Ev("a", 2)) is Verdict.QUEUED


def test_memory_stays_bounded_while_one_key_is_replaced_many_times() -> None:
    queue: ClientQueue[Ev] = ClientQueue(3, 1e9, ManualClock())
    for n in range(10_000):
        queue.put(Ev("a", n))
    assert len(queue) == 1
    assert queue.held <= 2 * queue.maxsize + 1
    assert drain(queue) == [("a", 9999, 9999)]
