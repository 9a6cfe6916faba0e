"""The ``models`` table on the real PostgreSQL: idempotent registration, one active model."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stream.forecast import registry
from stream.forecast.artifacts import latest_model_id, read_card

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# The storage migrations create this table; until they do, the test database gets exactly the
# columns and index they define (and a database that already has the table is left alone).
MODELS_TABLE = """
CREATE TABLE models (
    model_id text PRIMARY KEY,
    created_at timestamptz NOT NULL,
    metrics jsonb NOT NULL,
    card jsonb NOT NULL,
    active boolean NOT NULL DEFAULT false,
    activated_at timestamptz NULL
);
CREATE UNIQUE INDEX models_one_active ON models (active) WHERE active;
"""


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database)
    try:
        if await connection.fetchval("SELECT to_regclass('models')") is None:
            await connection.execute(MODELS_TABLE)
        yield connection
    finally:
        await connection.close()


def card(model_id: str, rmse: float = 0.1) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "created_at": "2026-11-24T06:00:00+00:00",
        "metrics": {"held_out": {"overall": {"model": {"rmse": rmse}}}},
        "architecture": {"type": "gru"},
    }


async def test_register_is_idempotent_and_refreshes_the_card(conn: asyncpg.Connection) -> None:
    await registry.register(conn, card("gru-a", rmse=0.2))
    await registry.register(conn, card("gru-a", rmse=0.1))
    rows = await conn.fetch("SELECT model_id, metrics, card, active FROM models")
    assert len(rows) == 1
    assert '"rmse": 0.1' in rows[0]["metrics"] and rows[0]["active"] is False
    assert await registry.active_model_id(conn) is None


async def test_activate_leaves_exactly_one_active_model(conn: asyncpg.Connection) -> None:
    for model_id in ("gru-a", "gru-b"):
        await registry.register(conn, card(model_id))
    await registry.activate(conn, "gru-a")
    assert await registry.active_model_id(conn) == "gru-a"
    await registry.activate(conn, "gru-b")
    await registry.activate(conn, "gru-b")  # again: nothing changes
    rows = await conn.fetch("SELECT model_id, active, activated_at FROM models ORDER BY model_id")
    assert [(r["model_id"], r["active"]) for r in rows] == [("gru-a", False), ("gru-b", True)]
    assert rows[1]["activated_at"] is not None and rows[1]["activated_at"].tzinfo is not None
    with pytest.raises(registry.ModelNotRegistered):
        await registry.activate(conn, "gru-missing")
    assert await registry.active_model_id(conn) == "gru-b"


async def test_concurrent_activations_never_collide(
    conn: asyncpg.Connection, database: str
) -> None:
    ids = [f"gru-{i}" for i in range(6)]
    for model_id in ids:
        await registry.register(conn, card(model_id))
    others = [await asyncpg.connect(database) for _ in ids]

    async def flip(connection: asyncpg.Connection, model_id: str) -> None:
        for other_id in (model_id, ids[0], model_id):
            await registry.activate(connection, other_id)

    try:
        await asyncio.gather(*(flip(c, m) for c, m in zip(others, ids, strict=True)))
    finally:
        for other in others:
            await other.close()
    assert await conn.fetchval("SELECT count(*) FROM models WHERE active") == 1
    assert await registry.active_model_id(conn) in ids


async def test_cli_registers_and_activates_the_committed_model(
    conn: asyncpg.Connection, database: str
) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stream.forecast", "--skip-training", "--register", database],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model_id = latest_model_id(REPO / "artifacts")
    assert await registry.active_model_id(conn) == model_id
    stored = await conn.fetchval("SELECT card->>'files' FROM models WHERE model_id = $1", model_id)
    assert stored is not None
    expected = read_card(REPO / "artifacts" / model_id)["files"]["model.keras"]
    assert expected in stored
