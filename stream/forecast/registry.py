"""The ``models`` table: which models exist, their metrics, and the one that is active.

Columns (created by the migrations): ``model_id text`` primary key, ``created_at timestamptz``,
``metrics jsonb``, ``card jsonb``, ``active boolean`` (a partial unique index allows one true
row), ``activated_at timestamptz``. The stream worker polls :func:`active_model_id` and switches
models without a restart; ``wattstream train --register URL`` registers and activates.

Every function takes an open asyncpg connection; none of them commits anything half-done.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from stream.forecast.errors import ForecastError


class ModelNotRegistered(ForecastError):
    """Activation of a model id the table does not hold."""


async def register(conn: asyncpg.Connection, card: dict[str, Any]) -> None:
    """Insert the model of ``card`` or refresh its metrics and card (idempotent)."""
    created_at = datetime.fromisoformat(card["created_at"])
    if created_at.tzinfo is None:
        raise ValueError("the card's created_at must be timezone-aware")
    await conn.execute(
        """
        INSERT INTO models (model_id, created_at, metrics, card)
        VALUES ($1, $2, $3::jsonb, $4::jsonb)
        ON CONFLICT (model_id) DO UPDATE
        SET created_at = EXCLUDED.created_at, metrics = EXCLUDED.metrics, card = EXCLUDED.card
        """,
        card["model_id"],
        created_at,
        json.dumps(card["metrics"]),
        json.dumps(card),
    )


async def activate(conn: asyncpg.Connection, model_id: str) -> None:
    """Make ``model_id`` the only active model, in one transaction (no moment with two)."""
    async with conn.transaction():
        # Serialises concurrent activations: without it two could both pass the deactivation
        # and then collide on the one-active-row index.
        await conn.execute("LOCK TABLE models IN SHARE ROW EXCLUSIVE MODE")
        known = await conn.fetchval("SELECT active FROM models WHERE model_id = $1", model_id)
        if known is None:
            raise ModelNotRegistered(f"model {model_id!r} is not registered")
        if known:
            return
        await conn.execute("UPDATE models SET active = false WHERE active")
        await conn.execute(
            "UPDATE models SET active = true, activated_at = now() WHERE model_id = $1", model_id
        )


async def active_model_id(conn: asyncpg.Connection) -> str | None:
    value = await conn.fetchval("SELECT model_id FROM models WHERE active")
    return None if value is None else str(value)
