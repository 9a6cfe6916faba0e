"""Training from the API against the real train command and PostgreSQL: a tiny run started
with the admin key streams its progress as server-sent events to the end, and its model is
registered, not activated."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app

from ..conftest import migrated_database
from .test_api_rest import ADMIN_KEY, KEY, settings_for

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = pytest.mark.integration

ADMIN = {"X-API-Key": ADMIN_KEY}
DEADLINE_S = 420.0
"""The tiny run takes about a minute on an idle 2-core machine; the API kills it at 6 min."""


@pytest.fixture(scope="module")
async def database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        yield url


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def client(database: str, services: Services, artifacts: Path) -> Iterator[TestClient]:
    settings = settings_for(
        database, services, f"t{uuid.uuid4().hex[:10]}", allow_training=True,
        training_artifacts_dir=artifacts, training_timeout=timedelta(minutes=6),
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client


def server_sent(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every event of the stream until the server ends it (each: id, event, data)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    deadline = time.monotonic() + DEADLINE_S
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"no end of the stream after {events[-1:]}"
            if line.startswith(":"):
                continue  # a keep-alive comment
            if not line:
                if current:
                    events.append(current)
                current = {}
                continue
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
    return events


def test_a_tiny_training_streams_its_progress_and_registers_an_inactive_model(
    client: TestClient, artifacts: Path
) -> None:
    assert (
        client.post("/api/v1/admin/training", json={}, headers={"X-API-Key": KEY}).status_code
        == 403
    )
    started = client.post(
        "/api/v1/admin/training", json={"preset": "tiny", "seed": 3}, headers=ADMIN
    )
    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["state"], run["preset"], run["seed"], run["model_id"]) == (
        "running",
        "tiny",
        3,
        None,
    )
    assert started.headers["location"] == f"/api/v1/admin/training/{run['training_id']}"
    busy = client.post("/api/v1/admin/training", json={"preset": "tiny"}, headers=ADMIN)
    assert busy.status_code == 409
    assert busy.json()["running"] == run["training_id"]

    events = server_sent(client, run["events_url"], ADMIN)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "done", events
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    assert all(e["event"] == e["data"]["event"] for e in events)
    epochs = [e["data"] for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for epoch in epochs:
        assert epoch["loss"] > 0 and epoch["val_loss"] > 0
        assert -10 < epoch["validation_skill"] < 1
        assert 0 <= epoch["validation_coverage"] <= 1
    done = events[-1]["data"]
    model_id = done["model_id"]
    assert (done["registered"], done["active"]) == (True, False)

    state = client.get(f"/api/v1/admin/training/{run['training_id']}", headers=ADMIN).json()
    assert (state["state"], state["model_id"], state["events"]) == (
        "succeeded",
        model_id,
        len(events),
    )
    models = {m["model_id"]: m for m in client.get("/api/v1/models", headers=ADMIN).json()}
    assert models[model_id]["active"] is False
    assert "horizons_summary" in models[model_id]["metrics"]
    assert (artifacts / model_id / "model_card.json").is_file()
    assert not (artifacts / "latest").exists()  # the served model is not touched

    # A client that reconnects gets what it missed only; an unknown training is a 404.
    resumed = server_sent(
        client, run["events_url"], {**ADMIN, "Last-Event-ID": str(len(events) - 1)}
    )
    assert resumed == events[-1:]
    assert client.get("/api/v1/admin/training/nope/events", headers=ADMIN).status_code == 404


def test_training_is_refused_where_it_is_turned_off(database: str, services: Services) -> None:
    settings = settings_for(database, services, f"t{uuid.uuid4().hex[:10]}")
    with TestClient(create_app(settings)) as client:
        refused = client.post("/api/v1/admin/training", json={"preset": "tiny"}, headers=ADMIN)
    assert refused.status_code == 409
    assert "turned off" in refused.json()["detail"]
