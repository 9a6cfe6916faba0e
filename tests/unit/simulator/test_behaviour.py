"""The device state machine: readings, commands, anomalies, labels and delivery faults."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from schema.device_messages import (
    AnomalyKind,
    AnomalyLabel,
    CommandAction,
    DeviceCommand,
    LabelSource,
    Presence,
)
from schema.wire import Reading, decode_reading
from simulator.behaviour import DeviceRuntime, Event
from simulator.fleet import build_fleet
from simulator.scenarios import DeliveryFaults

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
START_T = int(START.timestamp())
ISSUED = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def runtime(
    faults: DeliveryFaults | None = None, interval_s: int = 900, index: int = 0
) -> DeviceRuntime:
    model = build_fleet(index + 1, seed=5)[index]
    return DeviceRuntime(
        model, start_t=START_T, interval_s=interval_s, faults=faults or DeliveryFaults()
    )


def readings(events: list[Event]) -> list[Reading]:
    return [e for e in events if isinstance(e, Reading)]


def run(rt: DeviceRuntime, ticks: int) -> list[Event]:
    events: list[Event] = []
    for _ in range(ticks):
        events.extend(rt.tick())
    return events


def anomaly(kind: AnomalyKind, **fields: object) -> DeviceCommand:
    return DeviceCommand.model_validate(
        {"command_id": "c1", "action": "anomaly", "anomaly": kind, "issued_at": ISSUED, **fields}
    )


def test_normal_readings_are_the_models_and_seq_strictly_increases() -> None:
    rt = runtime()
    got = readings(run(rt, 20))
    assert [r.seq for r in got] == list(range(20))
    assert all(b.seq > a.seq for a, b in pairwise(got))
    expected = [
        rt.model.reading(k, datetime.fromtimestamp(START_T + 900 * k, UTC), 900) for k in range(20)
    ]
    assert [r.to_json() for r in got] == [r.to_json() for r in expected]


def test_spike_adds_magnitude_times_nominal_for_one_reading_and_is_labelled() -> None:
    rt = runtime()
    run(rt, 2)
    assert rt.command(anomaly(AnomalyKind.SPIKE, magnitude=4.0), START_T) == []
    events = run(rt, 2)
    label, spiked, after = events
    assert isinstance(label, AnomalyLabel)
    assert isinstance(spiked, Reading) and isinstance(after, Reading)
    nominal = rt.model.spec.nominal_kw
    normal = rt.model.power_kw(START_T + 2 * 900)
    assert spiked.power.value == pytest.approx(normal + 4.0 * nominal, abs=1e-3)
    assert after.power.value == pytest.approx(rt.model.power_kw(START_T + 3 * 900), abs=1e-3)
    assert label.device_id == rt.device_id
    assert label.first_seq == spiked.seq == 2
    assert label.start == spiked.ts
    assert (label.end - label.start).total_seconds() == 900
    assert (label.anomaly, label.magnitude, label.source) == (
        AnomalyKind.SPIKE,
        4.0,
        LabelSource.COMMAND,
    )
    assert label.label_id == f"c1:{rt.device_id}"


def test_drift_ramps_up_to_its_magnitude() -> None:
    rt = runtime()
    rt.command(anomaly(AnomalyKind.DRIFT, magnitude=1.0, duration_s=3600), START_T)
    got = readings(run(rt, 6))
    nominal = rt.model.spec.nominal_kw
    excess = [r.power.value - rt.model.power_kw(START_T + 900 * k) for k, r in enumerate(got)]
    assert excess[:4] == pytest.approx([nominal * f for f in (0.25, 0.5, 0.75, 1.0)], abs=1e-3)
    assert excess[4:] == pytest.approx([0, 0], abs=1e-3)


def test_stuck_repeats_the_last_value() -> None:
    rt = runtime()
    before = readings(run(rt, 3))[-1]
    rt.command(anomaly(AnomalyKind.STUCK, duration_s=1800), START_T)
    stuck = readings(run(rt, 3))
    assert [r.power.value for r in stuck[:2]] == [before.power.value] * 2
    assert stuck[2].power.value != before.power.value


def test_dropout_leaves_a_gap_in_seq() -> None:
    rt = runtime()
    run(rt, 2)
    rt.command(anomaly(AnomalyKind.DROPOUT, duration_s=2700), START_T)
    events = run(rt, 5)
    assert isinstance(events[0], AnomalyLabel) and events[0].first_seq == 2
    assert [r.seq for r in readings(events)] == [5, 6]


def test_planned_anomaly_starts_at_its_instant() -> None:
    rt = runtime()
    rt.schedule(START_T + 3600, anomaly(AnomalyKind.SPIKE), LabelSource.SCHEDULE)
    events = run(rt, 6)
    labels = [e for e in events if isinstance(e, AnomalyLabel)]
    assert len(labels) == 1
    assert labels[0].first_seq == 4 and labels[0].source is LabelSource.SCHEDULE
    with pytest.raises(ValueError, match="only anomalies"):
        rt.schedule(
            0,
            DeviceCommand(command_id="x", action=CommandAction.ONLINE, issued_at=ISSUED),
            LabelSource.SCHEDULE,
        )


def test_offline_buffers_and_online_sends_the_late_burst() -> None:
    rt = runtime()
    run(rt, 1)
    off = DeviceCommand(command_id="o", action=CommandAction.OFFLINE, issued_at=ISSUED)
    assert rt.command(off, START_T) == [Presence.OFFLINE]
    assert run(rt, 3) == []  # silent while offline
    on = DeviceCommand(command_id="n", action=CommandAction.ONLINE, issued_at=ISSUED)
    events = rt.command(on, START_T)
    assert events[0] is Presence.ONLINE
    assert [r.seq for r in readings(events)] == [1, 2, 3]
    assert [r.seq for r in readings(run(rt, 1))] == [4]


def test_offline_for_a_while_comes_back_by_itself() -> None:
    rt = runtime()
    off = DeviceCommand(
        command_id="o", action=CommandAction.OFFLINE, duration_s=1800, issued_at=ISSUED
    )
    rt.command(off, START_T)
    assert run(rt, 2) == []
    events = rt.tick()
    assert events[0] is Presence.ONLINE
    assert [r.seq for r in readings(events)] == [0, 1, 2]


def test_set_interval_changes_the_schedule_and_the_field() -> None:
    rt = runtime(interval_s=900)
    run(rt, 2)
    assert rt.next_t == START_T + 1800
    rt.command(
        DeviceCommand(
            command_id="i", action=CommandAction.SET_INTERVAL, interval_s=60, issued_at=ISSUED
        ),
        START_T,
    )
    assert rt.next_t == START_T + 900 + 60
    got = readings(run(rt, 2))
    assert [r.interval_s for r in got] == [60, 60]
    assert [(r.ts_utc - START).total_seconds() for r in got] == [960, 1020]


def test_duplicates_resend_the_same_bytes() -> None:
    rt = runtime(DeliveryFaults(duplicate_p=0.3))
    got = readings(run(rt, 200))
    seqs = [r.seq for r in got]
    assert len(seqs) > 220  # some were sent twice
    assert set(seqs) == set(range(200))
    payloads = [r.to_json() for r in got]
    for i, seq in enumerate(seqs):
        if seqs.count(seq) > 1:
            first = seqs.index(seq)
            assert payloads[i] == payloads[first]


def test_out_of_order_swaps_neighbours() -> None:
    rt = runtime(DeliveryFaults(out_of_order_p=0.2))
    seqs = [r.seq for r in readings(run(rt, 200))]
    assert sorted(seqs) == list(range(200)) or sorted(seqs) == list(range(199))  # last may be held
    swaps = sum(1 for a, b in pairwise(seqs) if b < a)
    assert swaps > 10
    assert all(abs(s - i) <= 1 for i, s in enumerate(seqs))


def test_late_bursts_go_offline_and_catch_up() -> None:
    rt = runtime(DeliveryFaults(late_burst_p=0.05, late_burst_ticks=(3, 3)))
    events = run(rt, 400)
    presences = [e for e in events if isinstance(e, Presence)]
    assert presences[:2] == [Presence.OFFLINE, Presence.ONLINE]
    assert presences.count(Presence.OFFLINE) >= 5
    # Nothing is lost: every reading arrives, in order, some of them late.
    seqs = [r.seq for r in readings(events)]
    assert seqs == sorted(seqs) and set(range(max(seqs) + 1)) == set(seqs)
    i = events.index(Presence.ONLINE)
    burst = readings(events[i : i + 5])
    assert len(burst) >= 3


def test_counter_reset_restarts_seq_at_zero() -> None:
    rt = runtime(DeliveryFaults(counter_reset_p=0.02))
    seqs = [r.seq for r in readings(run(rt, 500))]
    resets = [i for i, (a, b) in enumerate(pairwise(seqs)) if b != a + 1]
    assert resets
    assert all(seqs[i + 1] == 0 for i in resets)


def test_clock_skew_shifts_ts_not_energy() -> None:
    rt = runtime(DeliveryFaults(clock_skew_max_s=300), index=2)
    assert rt.skew_s != 0 and abs(rt.skew_s) <= 300
    got = readings(run(rt, 3))
    for k, r in enumerate(got):
        true_t = START_T + 900 * k
        assert r.ts_utc.timestamp() == true_t + rt.skew_s
        assert r.energy.value == rt.model.energy_kwh(true_t, 900)
        decode_reading(r.to_json())  # still a valid payload


def test_faults_are_reproducible() -> None:
    faults = DeliveryFaults(
        duplicate_p=0.1, out_of_order_p=0.1, late_burst_p=0.02, counter_reset_p=0.01
    )

    def trace() -> list[object]:
        return [e.to_json() if isinstance(e, Reading) else e for e in run(runtime(faults), 300)]

    assert trace() == trace()
