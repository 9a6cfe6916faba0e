"""The fan-out of one process's live feed to its websocket clients, and the replay buffer.

:meth:`Hub.publish` runs synchronously in the event loop for each Kafka message: it numbers the
event, keeps it in a short replay buffer (bounded by count and age), and puts it in the queue of
every subscriber whose filter matches, waking its sender. A subscriber whose queue gives up
(:mod:`api.live.queue`) is *kicked*: removed here, and its connection closed by its handler.

Subscribing with a last-event id replays the buffered events after it in the same synchronous
step that registers the subscriber, so nothing published in between is missed or doubled.

The hub also knows whether its source, Kafka, answers (:class:`Upstream`, set by the feed).
A change wakes every subscriber, whose sender then sends one ``upstream`` frame before any
further event: not queued with the events, so a client that is behind still learns the
current state at once, and only the latest state if it changed twice meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from api.live.events import KINDS, Kind, LiveEvent, event_text
from api.live.queue import ClientQueue, Verdict

log = logging.getLogger(__name__)

MAX_FILTER_DEVICES = 1000


class BadFilter(ValueError):
    """A subscription the client asked for that cannot be served (poison: tell the client)."""


class Full(BadFilter):
    """The process, or the client's key, has as many live clients as allowed: try later."""


@dataclass(frozen=True, slots=True)
class Filter:
    kinds: frozenset[Kind] = frozenset(KINDS)
    devices: frozenset[str] | None = None
    """``None``: every device."""
    within: Callable[[str], bool] | None = field(default=None, compare=False)
    """The devices the client's key reaches (``None``: every device); ``devices`` lie within."""

    @classmethod
    def parse(cls, kinds: Iterable[str] | None, devices: Iterable[str] | None) -> Filter:
        kind_set = frozenset(k.strip() for k in kinds or () if k.strip()) or frozenset(KINDS)
        unknown = sorted(kind_set - set(KINDS))
        if unknown:
            raise BadFilter(f"unknown kinds {unknown}; known: {list(KINDS)}")
        device_set = frozenset(d.strip() for d in devices or () if d.strip()) or None
        if device_set is not None and len(device_set) > MAX_FILTER_DEVICES:
            raise BadFilter(f"at most {MAX_FILTER_DEVICES} devices per subscription")
        return cls(kinds=kind_set, devices=device_set)  # type: ignore[arg-type]  # checked above

    def matches(self, event: LiveEvent) -> bool:
        return (
            event.kind in self.kinds
            and (self.devices is None or event.device_id in self.devices)
            and (self.within is None or self.within(event.device_id))
        )

    def limited_to(self, within: Callable[[str], bool]) -> Filter:
        """This filter within a key's devices; a device asked for outside them is refused."""
        outside = sorted(d for d in self.devices or () if not within(d))
        if outside:
            raise BadFilter(f"devices outside this key's: {outside[:10]}")
        return replace(self, within=within)

    def describe(self) -> dict[str, list[str] | None]:
        return {
            "kinds": sorted(self.kinds),
            "devices": sorted(self.devices) if self.devices is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Resume:
    status: str
    """``none`` (no last-event id given), ``resumed``, or ``gap`` (events were missed)."""
    replayed: int = 0
    reason: str | None = None

    def describe(self) -> dict[str, str | int | None]:
        return {"status": self.status, "replayed": self.replayed, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Upstream:
    """Whether the feed's Kafka answers, since when, and why not."""

    kafka: Literal["up", "down"]
    since: datetime
    detail: str | None = None
    version: int = 0
    """Bumped on every change: what a sender compares with the last state it sent."""

    def describe(self) -> dict[str, str | None]:
        return {"kafka": self.kafka, "since": self.since.isoformat(), "detail": self.detail}

    def frame(self) -> str:
        return json.dumps({"type": "upstream", **self.describe()})


@dataclass(eq=False)
class Subscriber:
    filter: Filter
    queue: ClientQueue[LiveEvent]
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    kicked: asyncio.Event = field(default_factory=asyncio.Event)
    kick_reason: str | None = None
    client: str | None = None
    """Who connected (a digest of the key), for the per-key limit."""
    upstream_sent: int = 0
    """The :attr:`Upstream.version` this client was last told (in its hello or a frame)."""

    def upstream_frame(self, upstream: Upstream) -> str | None:
        """The ``upstream`` frame to send when the state changed since this client was last
        told, else ``None``."""
        if upstream.version == self.upstream_sent:
            return None
        self.upstream_sent = upstream.version
        return upstream.frame()

    def kick(self, reason: str) -> None:
        if self.kick_reason is None:
            self.kick_reason = reason
            self.kicked.set()


@dataclass
class HubStats:
    published: int = 0
    queued: int = 0
    coalesced: int = 0
    kicked: int = 0
    replayed: int = 0


class Hub:
    def __init__(
        self,
        *,
        queue_size: int,
        max_behind_s: float,
        replay_size: int,
        replay_age_s: float,
        max_clients: int,
        max_clients_per_key: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        stream_id: str | None = None,
    ) -> None:
        self.stream_id = stream_id or secrets.token_hex(4)
        self.queue_size = queue_size
        self.max_behind_s = max_behind_s
        self.replay_age_s = replay_age_s
        self.max_clients = max_clients
        self.max_clients_per_key = max_clients_per_key
        self._clock = clock
        self._seq = 0
        self._replay: deque[LiveEvent] = deque(maxlen=replay_size or None)
        self._replay_size = replay_size
        self._subscribers: set[Subscriber] = set()
        self.stats = HubStats()
        self.upstream = Upstream("down", datetime.now(UTC), "not connected to Kafka yet")
        """Whether Kafka answers the feed; the feed sets it (:meth:`set_upstream`)."""

    def set_upstream(self, up: bool, detail: str | None = None) -> None:
        """Kafka answers (``up``) or not; on a change every client is told."""
        kafka: Literal["up", "down"] = "up" if up else "down"
        if kafka == self.upstream.kafka:
            return
        self.upstream = Upstream(kafka, datetime.now(UTC), detail, self.upstream.version + 1)
        log.log(
            logging.INFO if up else logging.WARNING,
            "live feed: Kafka %s%s; telling %d clients",
            kafka,
            f" ({detail})" if detail else "",
            len(self._subscribers),
        )
        for subscriber in self._subscribers:
            subscriber.wakeup.set()

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    @property
    def last_event_id(self) -> str | None:
        return self.event_id(self._seq) if self._seq else None

    def event_id(self, seq: int) -> str:
        return f"{self.stream_id}-{seq}"

    def publish(self, kind: Kind, device_id: str, data_json: str) -> LiveEvent:
        self._seq += 1
        now = self._clock()
        event = LiveEvent(
            self._seq,
            kind,
            device_id,
            now,
            event_text(self.event_id(self._seq), kind, device_id, data_json),
        )
        self.stats.published += 1
        if self._replay_size:
            self._replay.append(event)
            self._expire(now)
        for subscriber in tuple(self._subscribers):
            if subscriber.filter.matches(event):
                self._offer(subscriber, event)
        return event

    def subscribe(
        self, filter_: Filter, last_event_id: str | None = None, client: str | None = None
    ) -> tuple[Subscriber, Resume]:
        """Register a client; :class:`Full` past ``max_clients``, or past
        ``max_clients_per_key`` clients of the same ``client`` (a key's digest)."""
        if len(self._subscribers) >= self.max_clients:
            raise Full(f"this API process serves at most {self.max_clients} live clients")
        per_key = self.max_clients_per_key
        if client is not None and per_key is not None:
            same = sum(1 for s in self._subscribers if s.client == client)
            if same >= per_key:
                raise Full(f"this key has {same} live clients already, the most allowed")
        subscriber = Subscriber(
            filter_,
            ClientQueue(self.queue_size, self.max_behind_s, self._clock),
            client=client,
            upstream_sent=self.upstream.version,  # the hello describes the state of now
        )
        resume = self._replay_to(subscriber, last_event_id) if last_event_id else Resume("none")
        self._subscribers.add(subscriber)
        return subscriber, resume

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def refilter(self, subscriber: Subscriber, filter_: Filter) -> None:
        subscriber.filter = filter_

    def _offer(self, subscriber: Subscriber, event: LiveEvent) -> None:
        verdict = subscriber.queue.put(event)
        if verdict is Verdict.QUEUED:
            self.stats.queued += 1
        elif verdict is Verdict.COALESCED:
            self.stats.coalesced += 1
        else:
            self.stats.kicked += 1
            self._subscribers.discard(subscriber)
            reason = (
                "too far behind: more distinct devices waiting than the queue holds"
                if verdict is Verdict.OVERFLOW
                else f"behind for more than {self.max_behind_s:g}s"
            )
            log.info("disconnecting a slow live client: %s", reason)
            subscriber.kick(reason)
            return
        subscriber.wakeup.set()

    def _expire(self, now: float) -> None:
        while self._replay and now - self._replay[0].received_at > self.replay_age_s:
            self._replay.popleft()

    def _replay_to(self, subscriber: Subscriber, last_event_id: str) -> Resume:
        stream, _, seq_text = last_event_id.rpartition("-")
        if stream != self.stream_id or not seq_text.isdigit():
            return Resume("gap", reason="last_event_id is from another stream (restart?)")
        seq = int(seq_text)
        if seq > self._seq:
            return Resume("gap", reason="last_event_id is newer than this stream")
        self._expire(self._clock())
        oldest = self._replay[0].seq if self._replay else self._seq + 1
        if seq < oldest - 1:
            return Resume("gap", reason="last_event_id is older than the replay buffer")
        replayed = 0
        for event in self._replay:
            if event.seq > seq and subscriber.filter.matches(event):
                self._offer(subscriber, event)
                replayed += 1
        self.stats.replayed += replayed
        return Resume("resumed", replayed=replayed)
