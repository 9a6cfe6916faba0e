"""The walking skeleton, every hop real and every service its own process:

simulator --MQTT--> bridge --Kafka--> Faust worker --asyncpg--> PostgreSQL --> API
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from schema.topics import KafkaTopics
from simulator.devices import tick_time
from simulator.fleet import build_fleet
from tests.fixtures.bridge import spawn_bridge
from tests.fixtures.waiting import wait_until

from ..conftest import Services, Spawn, free_port

pytestmark = pytest.mark.e2e

# 00:30 UTC on the day Berlin springs forward at 01:00 UTC: the readings straddle the change.
START = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
INTERVAL_S, TICKS, DEVICES, SEED = 900, 4, 3, 11


def test_a_reading_crosses_every_hop_and_comes_back_exactly(
    services: Services, database: str, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    api_port = free_port()
    bridge = spawn_bridge(spawn, services, namespace, metrics_port=0)
    worker = spawn(
        "stream",
        "stream.worker",
        {
            "WATTSTREAM_STREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
            "WATTSTREAM_STREAM_DATABASE_URL": database,
            "WATTSTREAM_STREAM_APP_ID": f"e2e-{namespace}",
            "WATTSTREAM_STREAM_TOPIC_NAMESPACE": namespace,
            "WATTSTREAM_STREAM_DATA_DIR": str(bridge.log.parent / "faust"),
        },
    )
    api = spawn(
        "api",
        "api",
        {"WATTSTREAM_API_DATABASE_URL": database, "WATTSTREAM_API_PORT": str(api_port)},
    )
    base = f"http://127.0.0.1:{api_port}"

    def api_live() -> bool:
        try:
            return httpx.get(f"{base}/live", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until("the API", api_live, 60, interval_s=0.5, watched=[api])
    wait_until(
        "the bridge's subscription",
        lambda: "subscribed" in bridge.log_tail(),
        60,
        interval_s=0.5,
        watched=[bridge],
    )

    simulator = spawn(
        "simulator",
        "simulator",
        {"WATTSTREAM_SIM_MQTT_HOST": services.mqtt_host},
        f"--mqtt-port={services.mqtt_port}",
        f"--topic-namespace={namespace}",
        f"--devices={DEVICES}",
        f"--interval-s={INTERVAL_S}",
        f"--start={START.isoformat()}",
        f"--max-ticks={TICKS}",
        f"--seed={SEED}",
        "--speed=100000",
    )
    assert simulator.process.wait(timeout=60) == 0, simulator.log_tail()

    fleet = build_fleet(DEVICES, SEED)
    for model in fleet:
        expected = [
            model.reading(k, tick_time(START, k, INTERVAL_S), INTERVAL_S) for k in range(TICKS)
        ]
        url = f"{base}/api/v1/devices/{model.spec.device_id}/readings"
        params = {"start": START.isoformat(), "end": "2026-03-29T12:00:00+00:00"}

        def all_rows(url: str = url, params: dict[str, str] = params) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = httpx.get(url, params=params, timeout=5).json()["items"]
            return items if len(items) == TICKS else []

        items = wait_until(
            f"{model.spec.device_id}'s rows",
            all_rows,
            120,
            interval_s=0.5,
            watched=[bridge, worker, api],
        )
        assert [
            (i["device_id"], i["seq"], i["ts"], i["tz"], i["energy_kwh"], i["power_kw"])
            for i in items
        ] == [
            (r.device_id, r.seq, r.ts.isoformat(), r.tz, r.energy.value, r.power.value)
            for r in expected
        ]
    berlin = fleet[0]
    assert berlin.spec.tz == "Europe/Berlin"
    offsets = {
        r.ts.utcoffset()
        for r in (
            berlin.reading(k, tick_time(START, k, INTERVAL_S), INTERVAL_S) for k in range(TICKS)
        )
    }
    assert len(offsets) == 2, "the fixture must straddle Berlin's DST change"
