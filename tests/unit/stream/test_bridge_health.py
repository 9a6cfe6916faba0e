"""``/healthz`` and ``/metrics`` answers, computed without a socket."""

from __future__ import annotations

import json

import pytest

from stream.bridge.health import Health, HealthServer, assess
from stream.bridge.metrics import BridgeMetrics

pytestmark = pytest.mark.unit


def test_healthy_when_subscribed_producing_and_kafka_keeps_up() -> None:
    health = assess(subscribed=True, producing=True, oldest_unacked_s=0.2, stall_after_s=15)
    assert health.healthy
    assert health.detail["problems"] == []


@pytest.mark.parametrize(
    ("subscribed", "producing", "oldest", "problem"),
    [
        (False, True, None, "not subscribed to MQTT"),
        (True, False, None, "no Kafka producer"),
        (True, True, 15.5, "Kafka has not acknowledged a message for 15.5 s"),
    ],
)
def test_unhealthy_says_why(
    subscribed: bool, producing: bool, oldest: float | None, problem: str
) -> None:
    health = assess(
        subscribed=subscribed, producing=producing, oldest_unacked_s=oldest, stall_after_s=15
    )
    assert not health.healthy
    assert health.detail["problems"] == [problem]
    assert health.detail["status"] == "unhealthy"


def server(health: Health) -> tuple[HealthServer, BridgeMetrics]:
    metrics = BridgeMetrics()
    return HealthServer("127.0.0.1", 0, metrics.registry, lambda: health), metrics


def test_healthz_is_200_or_503_with_a_json_body() -> None:
    good = assess(subscribed=True, producing=True, oldest_unacked_s=None, stall_after_s=1)
    bad = assess(subscribed=False, producing=True, oldest_unacked_s=None, stall_after_s=1)
    status, content_type, body = server(good)[0].respond("GET", "/healthz")
    assert (status, content_type, json.loads(body)["status"]) == (200, "application/json", "ok")
    status, _, body = server(bad)[0].respond("GET", "/healthz?verbose=1")
    assert (status, json.loads(body)["subscribed"]) == (503, False)


def test_metrics_keep_the_ready_line_the_launcher_waits_for() -> None:
    srv, metrics = server(
        assess(subscribed=True, producing=True, oldest_unacked_s=None, stall_after_s=1)
    )
    metrics.ready.set(1)
    metrics.dead_lettered.labels("oversized").inc()
    status, content_type, body = srv.respond("GET", "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert b"\nbridge_ready 1.0\n" in body
    assert b'bridge_dead_lettered_total{reason="oversized"} 1.0' in body


def test_other_paths_and_methods_are_refused() -> None:
    srv, _ = server(assess(subscribed=True, producing=True, oldest_unacked_s=None, stall_after_s=1))
    assert srv.respond("GET", "/")[0] == 404
    assert srv.respond("POST", "/metrics")[0] == 405
