from __future__ import annotations

import random

import pytest

from schema.backoff import Backoff, Jitter

pytestmark = pytest.mark.unit


def test_waits_double_within_jitter_up_to_the_ceiling() -> None:
    backoff = Backoff(0.5, 8.0, rng=random.Random(1))
    bases = [0.5, 1, 2, 4, 8, 8, 8]
    delays = [backoff.next_delay() for _ in bases]
    for base, delay in zip(bases, delays, strict=True):
        assert base / 2 <= delay <= base
    assert backoff.attempts == len(bases)


def test_jitter_spreads_bridges_that_failed_together() -> None:
    delays = {round(Backoff(1, 30, rng=random.Random(seed)).next_delay(), 6) for seed in range(20)}
    assert len(delays) == 20


def test_reset_starts_again_from_the_first_wait() -> None:
    backoff = Backoff(1, 30, rng=random.Random(2))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    assert 0.5 <= backoff.next_delay() <= 1


@pytest.mark.parametrize(
    ("jitter", "low", "high"),
    [(Jitter.EQUAL, 0.5, 1.0), (Jitter.SPREAD, 0.5, 1.5), (Jitter.FULL, 0.0, 1.0)],
)
def test_each_jitter_keeps_its_range_of_the_base(jitter: Jitter, low: float, high: float) -> None:
    backoff = Backoff(0.5, 4.0, jitter=jitter, rng=random.Random(3))
    bases = [0.5, 1, 2, 4, 4, 4] * 50
    for base in bases:
        if not backoff.attempts % 6:
            backoff.reset()
        assert low * base <= backoff.next_delay() <= high * base
    spread = Backoff(1, 1, jitter=jitter, rng=random.Random(4))
    delays = [spread.next_delay() for _ in range(2000)]
    assert min(delays) < low + 0.05 and max(delays) > high - 0.05  # the whole range is used


def test_to_ceiling_makes_every_next_wait_the_longest() -> None:
    backoff = Backoff(0.5, 30, jitter=Jitter.SPREAD, rng=random.Random(5))
    backoff.next_delay()
    backoff.to_ceiling()
    assert all(15 <= backoff.next_delay() <= 45 for _ in range(10))


@pytest.mark.parametrize(("initial", "ceiling"), [(0, 1), (2, 1), (-1, 5)])
def test_nonsense_bounds_are_refused(initial: float, ceiling: float) -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial, ceiling)
