"""A websocket client's bounded queue that coalesces when the client falls behind: pure, no I/O.

While the client keeps up, events wait in arrival order. When ``maxsize`` events are waiting
the queue *coalesces*: of each (device, kind) only the latest event stays, in the order of the
latest events, carrying a count of the ones it replaced; from then on a new event replaces the
waiting one of its key. The client is *behind* from that moment until the queue is empty
again. The queue gives up on the client (:class:`Verdict` ``OVERFLOW``/``TOO_SLOW``) when a
new key finds no room even after coalescing, or when it has been behind for ``max_behind_s``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from enum import Enum
from typing import Generic, Protocol, TypeVar


class Keyed(Protocol):
    @property
    def key(self) -> Hashable: ...


E = TypeVar("E", bound=Keyed)


class Verdict(Enum):
    QUEUED = "queued"
    COALESCED = "coalesced"
    """Queued in place of a waiting event of the same key."""
    OVERFLOW = "overflow"
    """No room even with one event per key: disconnect the client."""
    TOO_SLOW = "too_slow"
    """Behind for longer than allowed: disconnect the client."""


class _Slot(Generic[E]):
    __slots__ = ("alive", "coalesced", "event")

    def __init__(self, event: E, coalesced: int) -> None:
        self.event = event
        self.coalesced = coalesced
        self.alive = True


class ClientQueue(Generic[E]):
    def __init__(self, maxsize: int, max_behind_s: float, clock: Callable[[], float]) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.max_behind_s = max_behind_s
        self._clock = clock
        self._slots: deque[_Slot[E]] = deque()
        self._latest: dict[Hashable, _Slot[E]] = {}
        self._live = 0
        self.behind_since: float | None = None
        self.coalesced_total = 0

    def __len__(self) -> int:
        return self._live

    @property
    def held(self) -> int:
        """Events kept in memory, replaced ones not yet dropped included (at most about twice
        ``maxsize``)."""
        return len(self._slots)

    @property
    def behind(self) -> bool:
        return self.behind_since is not None

    def put(self, event: E) -> Verdict:
        if self.behind_since is not None:
            if self._clock() - self.behind_since > self.max_behind_s:
                return Verdict.TOO_SLOW
            return self._put_coalescing(event)
        if self._live < self.maxsize:
            self._append(event, 0)
            return Verdict.QUEUED
        self._compact()
        self.behind_since = self._clock()
        return self._put_coalescing(event)

    def pop(self) -> tuple[E, int] | None:
        """The next event and how many it replaced, or ``None`` when empty."""
        while self._slots:
            slot = self._slots.popleft()
            if not slot.alive:
                continue
            self._live -= 1
            key = slot.event.key
            if self._latest.get(key) is slot:
                del self._latest[key]
            if self._live == 0:
                self.behind_since = None  # caught up
            return slot.event, slot.coalesced
        return None

    def _append(self, event: E, coalesced: int) -> None:
        slot = _Slot(event, coalesced)
        self._slots.append(slot)
        self._latest[event.key] = slot
        self._live += 1

    def _put_coalescing(self, event: E) -> Verdict:
        previous = self._latest.get(event.key)
        if previous is not None:
            previous.alive = False
            self._live -= 1
            self.coalesced_total += 1
            self._append(event, previous.coalesced + 1)
            if len(self._slots) > 2 * self.maxsize:  # drop replaced slots: memory stays bounded
                self._slots = deque(slot for slot in self._slots if slot.alive)
            return Verdict.COALESCED
        if self._live >= self.maxsize:
            return Verdict.OVERFLOW
        self._append(event, 0)
        return Verdict.QUEUED

    def _compact(self) -> None:
        """Keep only the latest waiting event per key, adding up what each replaced."""
        kept: deque[_Slot[E]] = deque()
        replaced: dict[Hashable, int] = {}
        for slot in self._slots:
            if not slot.alive:
                continue
            key = slot.event.key
            if self._latest[key] is slot:
                kept.append(slot)
            else:
                replaced[key] = replaced.get(key, 0) + 1 + slot.coalesced
        for slot in kept:
            extra = replaced.get(slot.event.key, 0)
            slot.coalesced += extra
            self.coalesced_total += extra
        self._slots = kept
        self._live = len(kept)
