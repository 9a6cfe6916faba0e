"""Fan-out, filters, replay and slow-client handling of the hub, without I/O."""

from __future__ import annotations

import json

import pytest

from api.live.hub import BadFilter, Filter, Full, Hub, Subscriber
from tests.fixtures.clock import ManualClock

pytestmark = pytest.mark.unit


def make_hub(clock: ManualClock | None = None, **overrides: float) -> Hub:
    options = {
        "queue_size": 8,
        "max_behind_s": 10.0,
        "replay_size": 100,
        "replay_age_s": 60.0,
        "max_clients": 10,
    }
    options.update(overrides)
    return Hub(clock=clock or ManualClock(), stream_id="s1", **options)  # type: ignore[arg-type]


def frames(subscriber: Subscriber) -> list[dict[str, object]]:
    out = []
    while (item := subscriber.queue.pop()) is not None:
        event, coalesced = item
        out.append(json.loads(event.with_coalesced(coalesced)))
    return out


def data(device: str, n: int) -> str:
    return json.dumps({"device_id": device, "n": n})


def test_each_client_gets_only_what_it_subscribed_to() -> None:
    hub = make_hub()
    readings_of_a, _ = hub.subscribe(Filter.parse(["readings"], ["a"]))
    alerts, _ = hub.subscribe(Filter.parse(["alerts"], None))
    everything, _ = hub.subscribe(Filter.parse(None, None))
    hub.publish("readings", "a", data("a", 1))
    hub.publish("readings", "b", data("b", 1))
    hub.publish("alerts", "b", data("b", 2))
    assert [(f["kind"], f["device_id"]) for f in frames(readings_of_a)] == [("readings", "a")]
    assert [(f["kind"], f["device_id"]) for f in frames(alerts)] == [("alerts", "b")]
    assert [f["id"] for f in frames(everything)] == ["s1-1", "s1-2", "s1-3"]
    assert readings_of_a.wakeup.is_set()


def test_event_frames_carry_the_data_verbatim() -> None:
    hub = make_hub()
    sub, _ = hub.subscribe(Filter())
    hub.publish("status", "dev-1", '{"status":"online"}')
    assert frames(sub) == [
        {
            "type": "event",
            "id": "s1-1",
            "kind": "status",
            "device_id": "dev-1",
            "data": {"status": "online"},
        }
    ]


def test_resume_replays_what_was_missed_with_the_filter() -> None:
    hub = make_hub()
    for n in range(5):
        hub.publish("readings", "a" if n % 2 == 0 else "b", data("a", n))
    sub, resume = hub.subscribe(Filter.parse(["readings"], ["a"]), last_event_id="s1-2")
    assert resume.status == "resumed"
    assert resume.replayed == 2
    assert [f["id"] for f in frames(sub)] == ["s1-3", "s1-5"]


@pytest.mark.parametrize(
    ("last_event_id", "reason"),
    [("other-3", "another stream"), ("s1-99", "newer"), ("s1-1", "older"), ("s1-x", "another")],
)
def test_resume_that_cannot_be_served_says_gap(last_event_id: str, reason: str) -> None:
    hub = make_hub(replay_size=3)
    for n in range(6):
        hub.publish("readings", "a", data("a", n))
    _, resume = hub.subscribe(Filter(), last_event_id=last_event_id)
    assert resume.status == "gap"
    assert resume.reason is not None
    assert reason in resume.reason


def test_replay_buffer_forgets_old_events() -> None:
    clock = ManualClock()
    hub = make_hub(clock, replay_age_s=10.0)
    hub.publish("readings", "a", data("a", 1))
    clock.now = 20.0
    hub.publish("readings", "a", data("a", 2))
    _, resume = hub.subscribe(Filter(), last_event_id="s1-0")
    assert resume.status == "gap"
    _, resume = hub.subscribe(Filter(), last_event_id="s1-1")
    assert (resume.status, resume.replayed) == ("resumed", 1)


def test_resume_at_the_newest_event_replays_nothing() -> None:
    hub = make_hub()
    hub.publish("readings", "a", data("a", 1))
    _, resume = hub.subscribe(Filter(), last_event_id="s1-1")
    assert (resume.status, resume.replayed) == ("resumed", 0)


def test_a_slow_client_gets_the_latest_per_device_and_a_stuck_one_is_kicked() -> None:
    clock = ManualClock()
    hub = make_hub(clock, queue_size=4, max_behind_s=5.0)
    slow, _ = hub.subscribe(Filter.parse(["readings"], None))
    for n in range(20):
        hub.publish("readings", f"d{n % 2}", data(f"d{n % 2}", n))
    got = frames(slow)
    assert [(f["device_id"], f["data"]["n"]) for f in got] == [("d0", 18), ("d1", 19)]  # type: ignore[index]
    assert sum(int(f.get("coalesced", 0)) for f in got) == 18  # type: ignore[call-overload]
    assert hub.stats.coalesced > 0

    stuck, _ = hub.subscribe(Filter.parse(["readings"], None))
    for n in range(10):
        hub.publish("readings", "d0", data("d0", n))
    frames(slow)  # this one catches up; the stuck one never reads
    clock.now = 6.0
    hub.publish("readings", "d0", data("d0", 99))
    assert stuck.kicked.is_set()
    assert stuck.kick_reason is not None
    assert "behind" in stuck.kick_reason
    assert not slow.kicked.is_set()
    assert hub.clients == 1
    assert hub.stats.kicked == 1


def test_bad_filters_and_a_full_server_are_refused() -> None:
    with pytest.raises(BadFilter, match="unknown kinds"):
        Filter.parse(["readings", "gossip"], None)
    hub = make_hub(max_clients=1)
    hub.subscribe(Filter())
    with pytest.raises(BadFilter, match="at most 1"):
        hub.subscribe(Filter())


def test_a_key_has_its_own_limit_of_clients() -> None:
    hub = make_hub(max_clients=10, max_clients_per_key=2)
    first, _ = hub.subscribe(Filter(), client="key-a")
    hub.subscribe(Filter(), client="key-a")
    with pytest.raises(Full, match="this key has 2 live clients"):
        hub.subscribe(Filter(), client="key-a")
    hub.subscribe(Filter(), client="key-b")  # another key is not held up
    hub.unsubscribe(first)
    hub.subscribe(Filter(), client="key-a")
    with pytest.raises(Full, match="at most 10"):
        for _ in range(10):
            hub.subscribe(Filter())


def test_a_filter_limited_to_a_keys_devices() -> None:
    hub = make_hub()

    def within(device_id: str) -> bool:
        return device_id.startswith("site-a-")

    limited, _ = hub.subscribe(Filter.parse(["readings"], None).limited_to(within))
    chosen, _ = hub.subscribe(Filter.parse(None, ["site-a-2"]).limited_to(within))
    for device in ("site-a-1", "site-b-1", "site-a-2"):
        hub.publish("readings", device, data(device, 1))
    assert [f["device_id"] for f in frames(limited)] == ["site-a-1", "site-a-2"]
    assert [f["device_id"] for f in frames(chosen)] == ["site-a-2"]
    with pytest.raises(BadFilter, match="outside this key's: \\['site-b-1'\\]"):
        Filter.parse(None, ["site-a-1", "site-b-1"]).limited_to(within)


def test_every_client_is_told_when_kafka_goes_and_comes_back() -> None:
    hub = make_hub(queue_size=2)
    assert hub.upstream.kafka == "down"  # not connected yet
    hub.set_upstream(True)
    ahead = hub.subscribe(Filter.parse(None, None))[0]
    lagging = hub.subscribe(Filter.parse(None, None))[0]
    assert ahead.upstream_frame(hub.upstream) is None  # its hello said "up"
    for n in range(5):  # one client falls behind: its queue coalesces
        hub.publish("readings", f"dev-{n % 2}", data(f"dev-{n % 2}", n))
    assert lagging.queue.behind
    frames(ahead)
    ahead.wakeup.clear()
    hub.set_upstream(True)  # no change: nobody is woken
    assert not ahead.wakeup.is_set()
    hub.set_upstream(False, "Kafka did not answer within 5s (metadata)")
    assert ahead.wakeup.is_set() and lagging.wakeup.is_set()
    for subscriber in (ahead, lagging):  # the state, at once, however far behind
        frame = subscriber.upstream_frame(hub.upstream)
        assert frame is not None
        told = json.loads(frame)
        assert told == {
            "type": "upstream",
            "kafka": "down",
            "since": hub.upstream.since.isoformat(),
            "detail": "Kafka did not answer within 5s (metadata)",
        }
        assert told["since"].endswith("+00:00")
        assert subscriber.upstream_frame(hub.upstream) is None  # once
    # Down and up again before a client's sender ran: it is told only how things are now.
    hub.set_upstream(True)
    hub.set_upstream(False, "again")
    hub.set_upstream(True)
    for subscriber in (ahead, lagging):
        frame = subscriber.upstream_frame(hub.upstream)
        assert frame is not None and json.loads(frame)["kafka"] == "up"
        assert json.loads(frame)["detail"] is None
    late = hub.subscribe(Filter.parse(None, None))[0]
    assert late.upstream_frame(hub.upstream) is None  # its hello tells the state
