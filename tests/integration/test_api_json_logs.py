"""``--log-format json`` on the real API process: every line of its log is one JSON event with
an ISO-8601 UTC time, the service and the level; the events of a request carry its id, which is
the client's ``X-Request-ID`` (or a new one) and comes back in the response."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.fixtures.api import start_api, wait_until_answering

from ..conftest import Services, Spawn
from ..fixtures.waiting import wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_json_events_carry_the_request_id(
    database: str, services: Services, namespace: str, spawn: Spawn
) -> None:
    api, port = start_api(spawn, services, database, namespace, log_format="json", log_level="info")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        await wait_until_answering(api, http)
        answer = await http.get("/api/v1/devices", headers={"X-Request-ID": "trace-abc.1"})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "trace-abc.1"
        generated = await http.get("/api/v1/devices", headers={"X-Request-ID": "bad id\t!"})
        assert generated.headers["x-request-id"] != "bad id\t!"
        assert len(generated.headers["x-request-id"]) == 32

    def events() -> list[dict[str, Any]]:
        lines = api.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def tagged() -> list[dict[str, Any]]:
        return [e for e in events() if e.get("request_id") == "trace-abc.1"]

    found = await wait_until_async("the request's access event", tagged, 20, detail=api.log_tail)
    assert any("/api/v1/devices" in event["message"] for event in found)
    for event in events():
        assert event["service"] == "api"
        assert event["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        assert datetime.fromisoformat(event["ts"]).utcoffset() == UTC.utcoffset(None)
