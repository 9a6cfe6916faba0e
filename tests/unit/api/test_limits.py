"""The token bucket: a burst, then the rate; the wait it answers; idle clients forgotten; the
settings' defaults outside development."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from api import limits
from api.limits import TokenBuckets, client_of
from api.settings import DEFAULT_RATE_LIMIT_PER_S, ApiSettings
from schema.connections import DatabaseConnection
from tests.fixtures.clock import ManualClock

pytestmark = pytest.mark.unit


def test_a_burst_then_the_rate() -> None:
    clock = ManualClock(100.0)
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token in half a second
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 60  # refills to the burst, never beyond
    assert [buckets.take("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_the_longest_idle_client_is_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_BUCKETS", 2)
    clock = ManualClock(100.0)
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock)
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    buckets.take("b")
    buckets.take("c")  # "a" is forgotten: a full bucket again
    assert buckets.take("a") == 0.0


def test_clients_are_their_key_digest_or_their_address() -> None:
    keyed = client_of({"headers": [(b"x-api-key", b"secret-key")], "client": ("10.0.0.1", 1)})
    assert keyed.startswith("key:")
    assert "secret-key" not in keyed
    assert client_of({"headers": [], "client": ("10.0.0.1", 1)}) == "addr:10.0.0.1"


def test_outside_development_reads_need_a_key_and_requests_are_limited() -> None:
    strong = (SecretStr("k" * 20),)
    production = ApiSettings(
        environment="production",
        database=DatabaseConnection(url=SecretStr("postgresql://u:a-strong-password@db/w")),
        api_keys=strong,
        admin_api_keys=strong,
    )
    assert production.reads_need_key
    assert production.rate_limit == DEFAULT_RATE_LIMIT_PER_S
    development = ApiSettings()
    assert (development.reads_need_key, development.rate_limit) == (False, 0.0)
    assert ApiSettings(require_read_key=True, rate_limit_per_s=3).rate_limit == 3
