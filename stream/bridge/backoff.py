"""Jittered exponential backoff between reconnection attempts.

The base wait doubles from ``initial`` up to ``ceiling``; each wait is drawn uniformly from the
upper half of the base ("equal jitter"), so bridges that lost the same broker at the same moment
do not all come back at the same moment, and no wait exceeds ``ceiling``.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float, ceiling: float, rng: random.Random | None = None) -> None:
        if not 0 < initial <= ceiling:
            raise ValueError(f"need 0 < initial ({initial}) <= ceiling ({ceiling})")
        self._initial, self._ceiling = initial, ceiling
        self._base = initial
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.attempts = 0
        """Waits handed out since the last :meth:`reset`."""

    def next_delay(self) -> float:
        """The wait before the next attempt (and the base doubles for the one after)."""
        delay = self._base / 2 + self._rng.uniform(0, self._base / 2)
        self._base = min(self._base * 2, self._ceiling)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits about ``initial`` again."""
        self._base = self._initial
        self.attempts = 0
