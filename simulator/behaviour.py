"""What one device does over time: a pure state machine, no I/O.

A :class:`DeviceRuntime` turns its model's power into readings, one per interval, and applies
what it is told (:class:`schema.device_messages.DeviceCommand`: anomalies, going offline and
back, a new interval) and the delivery faults of its scenarios
(:class:`simulator.scenarios.DeliveryFaults`). Each step returns the ordered events to publish:
readings, presence changes and ground-truth labels. The transport publishes them; the tests
feed commands and assert the exact events.

Sequence numbers: ``seq`` grows by one per interval, also for readings that are lost on purpose
(a ``dropout`` leaves a gap, as a lost message would); a ``counter-reset`` restarts it at 0.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from schema.device_messages import (
    AnomalyKind,
    AnomalyLabel,
    CommandAction,
    DeviceCommand,
    LabelSource,
    Presence,
)
from schema.wire import Reading
from simulator.devices import DeviceModel
from simulator.localtime import local_datetime
from simulator.randomness import stable_key, uniform
from simulator.scenarios import DeliveryFaults

log = logging.getLogger(__name__)

Event = Reading | Presence | AnomalyLabel
"""What a step asks the transport to publish, in order."""

MAX_BUFFERED = 10_000
"""Readings a device keeps while offline; beyond that it drops the oldest (its memory is full)."""

DEFAULT_MAGNITUDE = {AnomalyKind.SPIKE: 3.0, AnomalyKind.DRIFT: 1.0}
"""Spike: this many times nominal power on top; drift: reaches this many times nominal."""
DEFAULT_DURATION_S = 3600
"""How long an anomaly lasts unless the command says; a spike lasts one interval."""

_NO_FAULTS = DeliveryFaults()


@dataclass(slots=True)
class _Pending:
    at_t: int
    """Starts with the first reading at or after this instant (0: the next reading)."""
    command: DeviceCommand
    source: LabelSource


@dataclass(slots=True)
class _Active:
    kind: AnomalyKind
    start_t: int
    end_t: int
    magnitude: float
    stuck_kw: float


class DeviceRuntime:
    """One device's state: its clock position, ``seq``, presence, anomalies and buffers."""

    def __init__(
        self,
        model: DeviceModel,
        *,
        start_t: int,
        interval_s: int,
        faults: DeliveryFaults = _NO_FAULTS,
    ) -> None:
        self.model = model
        self.device_id = model.spec.device_id
        self.interval_s = interval_s
        self.next_t = start_t
        """Unix time of the next reading's interval start."""
        self.seq = 0
        self.ticks = 0
        """Intervals done (readings made, published or not)."""
        self.online = True
        self.faults = faults
        """The delivery faults (duplicates, reordering, clock skew) this device shows."""
        self._key = stable_key("faults", model.seed, self.device_id)
        self.skew_s = (
            round((2 * uniform(self._key, -1) - 1) * faults.clock_skew_max_s)
            if faults.clock_skew_max_s
            else 0
        )
        self._offline_until: int | None = None
        self._buffer: deque[Reading] = deque(maxlen=MAX_BUFFERED)
        self._held: Reading | None = None
        self._resend: Reading | None = None
        self._pending: list[_Pending] = []
        self._active: list[_Active] = []
        self._last_kw: float | None = None

    # -- commands ---------------------------------------------------------------------------

    def schedule(self, at_t: int, command: DeviceCommand, source: LabelSource) -> None:
        """Plan an anomaly for the first reading at or after ``at_t``."""
        if command.action is not CommandAction.ANOMALY:
            raise ValueError(f"only anomalies can be scheduled, not {command.action}")
        self._pending.append(_Pending(at_t, command, source))

    def command(self, command: DeviceCommand, now_t: int) -> list[Event]:
        """Obey ``command`` (received at simulated time ``now_t``); return what to publish now."""
        events: list[Event] = []
        action = command.action
        if action is CommandAction.ANOMALY:
            self._pending.append(_Pending(0, command, LabelSource.COMMAND))
        elif action is CommandAction.OFFLINE:
            if self.online:
                self.online = False
                events.append(Presence.OFFLINE)
            self._offline_until = now_t + command.duration_s if command.duration_s else None
        elif action is CommandAction.ONLINE:
            if not self.online:
                self._come_back(events)
        elif action is CommandAction.SET_INTERVAL:
            assert command.interval_s is not None  # the contract's validator
            if self.ticks:
                self.next_t += command.interval_s - self.interval_s
            self.interval_s = command.interval_s
        return events

    # -- time -------------------------------------------------------------------------------

    def tick(self) -> list[Event]:
        """Make the reading of the interval starting at :attr:`next_t`; advance to the next."""
        t = self.next_t
        events: list[Event] = []
        faults = self.faults
        draw = self.ticks * 8
        if not self.online and self._offline_until is not None and t >= self._offline_until:
            self._come_back(events)
        if faults.counter_reset_p and uniform(self._key, draw) < faults.counter_reset_p:
            self.seq = 0
        self._start_due_anomalies(t, events)
        reading = self._reading(t)
        self.seq += 1
        self.ticks += 1
        self.next_t = t + self.interval_s

        out: list[Reading] = []
        if self._resend is not None:
            out.append(self._resend)
            self._resend = None
        if reading is not None:
            if (
                self._held is None
                and faults.out_of_order_p
                and uniform(self._key, draw + 1) < faults.out_of_order_p
            ):
                self._held = reading  # goes out after the next one
            else:
                out.append(reading)
                if self._held is not None:
                    out.append(self._held)
                    self._held = None
            if faults.duplicate_p and uniform(self._key, draw + 2) < faults.duplicate_p:
                self._resend = reading
        if self.online:
            events.extend(out)
        else:
            self._keep(out)
        if (
            self.online
            and faults.late_burst_p
            and uniform(self._key, draw + 3) < faults.late_burst_p
        ):
            low, high = faults.late_burst_ticks
            away = low + int(uniform(self._key, draw + 4) * (high - low + 1))
            self.online = False
            self._offline_until = self.next_t + away * self.interval_s
            events.append(Presence.OFFLINE)
        return events

    # -- internals ----------------------------------------------------------------------------

    def _come_back(self, events: list[Event]) -> None:
        self.online = True
        self._offline_until = None
        events.append(Presence.ONLINE)
        events.extend(self._buffer)  # the late burst, oldest first
        self._buffer.clear()

    def _keep(self, readings: list[Reading]) -> None:
        for reading in readings:
            if len(self._buffer) == self._buffer.maxlen:
                log.warning("%s: offline buffer full, dropping its oldest reading", self.device_id)
            self._buffer.append(reading)

    def _start_due_anomalies(self, t: int, events: list[Event]) -> None:
        self._active = [a for a in self._active if t < a.end_t]
        due = [p for p in self._pending if p.at_t <= t]
        if not due:
            return
        self._pending = [p for p in self._pending if p.at_t > t]
        tz = self.model.spec.tz
        for pending in due:
            command = pending.command
            kind = command.anomaly
            assert kind is not None  # the contract's validator
            duration = command.duration_s or (
                self.interval_s if kind is AnomalyKind.SPIKE else DEFAULT_DURATION_S
            )
            magnitude = command.magnitude
            if magnitude is None:
                magnitude = DEFAULT_MAGNITUDE.get(kind)
            stuck = self._last_kw if self._last_kw is not None else self.model.power_kw(t)
            self._active.append(_Active(kind, t, t + duration, magnitude or 0.0, stuck))
            start = local_datetime(tz, t + self.skew_s)
            end = local_datetime(tz, t + self.skew_s + duration)
            events.append(
                AnomalyLabel(
                    label_id=f"{command.command_id}:{self.device_id}",
                    device_id=self.device_id,
                    anomaly=kind,
                    start=start,
                    end=end,
                    first_seq=self.seq,
                    magnitude=magnitude,
                    nominal_kw=self.model.spec.nominal_kw,
                    source=pending.source,
                    command_id=command.command_id,
                )
            )
            log.info("%s: %s anomaly %s from %s", self.device_id, kind, command.command_id, start)

    def _reading(self, t: int) -> Reading | None:
        model = self.model
        power = normal = model.power_kw(t)
        for anomaly in self._active:
            kind = anomaly.kind
            if kind is AnomalyKind.DROPOUT:
                return None
            if kind is AnomalyKind.SPIKE:
                power += anomaly.magnitude * model.spec.nominal_kw
            elif kind is AnomalyKind.DRIFT:
                done = (t - anomaly.start_t + self.interval_s) / (anomaly.end_t - anomaly.start_t)
                power += anomaly.magnitude * model.spec.nominal_kw * min(1.0, done)
            else:  # stuck: the value it had before, over and over
                power = anomaly.stuck_kw
        if not self._active:
            self._last_kw = normal
        return model.make_reading(self.seq, t, self.interval_s, power, skew_s=self.skew_s)
