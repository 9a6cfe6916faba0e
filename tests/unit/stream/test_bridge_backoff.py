from __future__ import annotations

import random

import pytest

from stream.bridge.backoff import Backoff

pytestmark = pytest.mark.unit


def test_waits_double_within_jitter_up_to_the_ceiling() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(1))
    bases = [0.5, 1, 2, 4, 8, 8, 8]
    delays = [backoff.next_delay() for _ in bases]
    for base, delay in zip(bases, delays, strict=True):
        assert base / 2 <= delay <= base
    assert backoff.attempts == len(bases)


def test_jitter_spreads_bridges_that_failed_together() -> None:
    delays = {round(Backoff(1, 30, random.Random(seed)).next_delay(), 6) for seed in range(20)}
    assert len(delays) == 20


def test_reset_starts_again_from_the_first_wait() -> None:
    backoff = Backoff(1, 30, random.Random(2))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    assert 0.5 <= backoff.next_delay() <= 1


@pytest.mark.parametrize(("initial", "ceiling"), [(0, 1), (2, 1), (-1, 5)])
def test_nonsense_bounds_are_refused(initial: float, ceiling: float) -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial, ceiling)
