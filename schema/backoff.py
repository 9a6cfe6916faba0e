"""Jittered exponential backoff between reconnection attempts: one implementation for every
service (the bridge, the simulator's connections, the worker's sink, the API's Kafka feed and
MQTT command client).

The base wait doubles from ``initial`` up to ``ceiling``; each wait is the base times a random
factor from the :class:`Jitter`'s range, so clients that lost the same server at the same
moment do not all come back at the same moment. Pure: it computes waits; the caller sleeps.

=========  =============  ==================================================================
Jitter     factor         used by
=========  =============  ==================================================================
EQUAL      [0.5, 1.0]     the bridge: no wait exceeds the ceiling
SPREAD     [0.5, 1.5]     the simulator's MQTT connections and the worker's sink
FULL       [0.0, 1.0]     the API's Kafka feed and MQTT command client ("full jitter")
=========  =============  ==================================================================
"""

from __future__ import annotations

import random
from enum import Enum


class Jitter(Enum):
    """The range of the random factor applied to the base wait."""

    EQUAL = (0.5, 1.0)
    SPREAD = (0.5, 1.5)
    FULL = (0.0, 1.0)


class Backoff:
    def __init__(
        self,
        initial: float,
        ceiling: float,
        *,
        jitter: Jitter = Jitter.EQUAL,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial <= ceiling:
            raise ValueError(f"need 0 < initial ({initial}) <= ceiling ({ceiling})")
        self.initial, self.ceiling, self.jitter = initial, ceiling, jitter
        self._base = initial
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.attempts = 0
        """Waits handed out since the last :meth:`reset`."""

    def next_delay(self) -> float:
        """The wait before the next attempt (and the base doubles for the one after)."""
        low, high = self.jitter.value
        delay = self._base * self._rng.uniform(low, high)
        self._base = min(self._base * 2, self.ceiling)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits about ``initial`` again."""
        self._base = self.initial
        self.attempts = 0

    def to_ceiling(self) -> None:
        """From now on wait the longest: a failure that retrying soon will not cure (a refusal)."""
        self._base = self.ceiling
